//! `hematite dev-cert`: a local certificate authority and a server certificate signed by it,
//! so HTTPS (and with it OAuth) works against a certificate the user trusts, without an
//! afternoon of openssl. The CA's private key is not kept: nothing else can be signed with it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

#[derive(Args, Debug)]
pub struct DevCertArgs {
    /// Directory to write ca.pem, cert.pem and key.pem into (created if missing).
    #[arg(long, default_value = "./hematite-dev-cert")]
    out: PathBuf,
    /// A DNS name or IP address the certificate is for (repeatable), such as a namespace's
    /// `myns.servicebus.windows.net`. Default: localhost, 127.0.0.1 and ::1.
    #[arg(long = "name", value_name = "NAME")]
    names: Vec<String>,
    /// Replace the files of an earlier run (whose CA someone may already trust).
    #[arg(long)]
    force: bool,
}

pub fn run(args: DevCertArgs) -> anyhow::Result<()> {
    if args.out.join("ca.pem").exists() && !args.force {
        anyhow::bail!(
            "{} already holds a development CA (machines may trust it); use it, or pass --force to make a new one",
            args.out.display()
        );
    }
    let names = if args.names.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    } else {
        args.names
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Hematite development CA");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut params = CertificateParams::new(names.clone())
        .context("a --name is neither a DNS name nor an IP address")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names[0].clone());
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let write = |name: &str, text: String| {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok::<_, anyhow::Error>(path)
    };
    let ca_path = write("ca.pem", ca.pem())?;
    let cert_path = write("cert.pem", cert.pem() + &ca.pem())?;
    let key_path = write("key.pem", key.serialize_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
    }
    let (ca, cert, key) = (ca_path.display(), cert_path.display(), key_path.display());
    println!(
        "A certificate for {names} signed by a new development CA:\n  {ca}\n  {cert}\n  {key}\n\n\
         Serve HTTPS (and Service Bus over AMQPS on 5671) with it:\n  hematite serve --tls-cert {cert} --tls-key {key}\n\n\
         Trust the CA (only on machines you develop on):\n\
         \x20 Python SDK:  QueueServiceClient(..., connection_verify=\"{ca}\")  or  REQUESTS_CA_BUNDLE={ca}\n\
         \x20   Service Bus: ServiceBusClient.from_connection_string(..., connection_verify=\"{ca}\"),\n\
         \x20   its uamqp transport SSL_CERT_FILE={ca}; hematite sb: HEMATITE_CA_FILE={ca}\n\
         \x20 Node.js:     NODE_EXTRA_CA_CERTS={ca}  or the client option tlsOptions: {{ ca }}\n\
         \x20 .NET, Java and the rest, system-wide on Debian/Ubuntu:\n\
         \x20   sudo cp {ca} /usr/local/share/ca-certificates/hematite-dev.crt && sudo update-ca-certificates",
        names = names.join(", ")
    );
    Ok(())
}
