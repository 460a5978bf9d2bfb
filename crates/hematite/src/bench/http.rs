//! A lean HTTP/1.1 keep-alive connection for the load generator.
//!
//! The generator must cost as little CPU as possible, because it shares the machine with the
//! server it measures, and it must cost the same against every target (Hematite, Azurite, the
//! nginx ceiling). So each client owns one TCP connection and writes pre-built requests on it;
//! responses are parsed with `httparse`, bodies read by `Content-Length` or chunked encoding.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct Connection {
    addr: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Connection {
    pub fn new(addr: &str) -> Self {
        Connection {
            addr: addr.to_owned(),
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Sends one request and reads its response, reconnecting once if the connection was closed.
    pub async fn send(&mut self, request: &[u8]) -> anyhow::Result<Response> {
        match self.try_send(request).await {
            Ok(r) => Ok(r),
            Err(_) => {
                self.stream = None;
                self.buf.clear();
                self.try_send(request).await
            }
        }
    }

    async fn try_send(&mut self, request: &[u8]) -> anyhow::Result<Response> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr)
                .await
                .with_context(|| format!("connecting to {}", self.addr))?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        let stream = self.stream.as_mut().context("no connection")?;
        stream.write_all(request).await?;
        let (status, head_len, framing) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(n) = resp.parse(&self.buf)? {
                let status = resp.code.unwrap_or(0);
                let mut framing = Framing::Length(0);
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        framing = Framing::Length(std::str::from_utf8(h.value)?.trim().parse()?);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                        && h.value.eq_ignore_ascii_case(b"chunked")
                    {
                        framing = Framing::Chunked;
                    }
                }
                if status == 100 {
                    self.buf.drain(..n);
                    continue;
                }
                break (status, n, framing);
            }
            read_more(stream, &mut self.buf).await?;
        };
        self.buf.drain(..head_len);
        let body = match framing {
            Framing::Length(len) => {
                while self.buf.len() < len {
                    read_more(stream, &mut self.buf).await?;
                }
                self.buf.drain(..len).collect()
            }
            Framing::Chunked => read_chunked(stream, &mut self.buf).await?,
        };
        Ok(Response { status, body })
    }
}

enum Framing {
    Length(usize),
    Chunked,
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut chunk))
        .await
        .context("response timed out")??;
    if n == 0 {
        bail!("connection closed");
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let (used, size) = loop {
            match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete(c)) => break c,
                Ok(httparse::Status::Partial) => read_more(stream, buf).await?,
                Err(_) => bail!("bad chunk size"),
            }
        };
        buf.drain(..used);
        let size = usize::try_from(size)?;
        while buf.len() < size + 2 {
            read_more(stream, buf).await?;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
        if size == 0 {
            return Ok(body);
        }
    }
}
