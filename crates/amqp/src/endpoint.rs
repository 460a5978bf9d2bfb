//! The protocol state of an open connection: its sessions and their links, session windows,
//! link credit, deliveries in both directions and their settlement (AMQP 1.0 part 2, §2.5–2.7).
//!
//! It does no I/O. Frames from the peer and commands from link tasks go in; frames to write
//! accumulate in `out`, events go to link tasks over their channels, and new attaches wait in
//! `attaches` for the driver to hand to the service. That keeps every rule here testable by
//! feeding performatives and reading back frames.
//!
//! Choices a server has to make, made here:
//! - This side's handle for a link is the peer's handle for it, and its session channel is the
//!   lowest free one.
//! - Credit to a sending peer is kept at the service's figure less what the service has not
//!   settled yet, so unprocessed messages never exceed it.
//! - The peer's session window and its link credit are honoured: a send beyond either waits.
//! - Dispositions that follow one another with the same outcome go out as one range.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use fe2o3_amqp_types::definitions::{
    AmqpError, ConnectionError, Error, LinkError, ReceiverSettleMode, Role, SessionError,
};
use fe2o3_amqp_types::messaging::{DeliveryState, Rejected};
use fe2o3_amqp_types::performatives::{
    Attach, Begin, Detach, Disposition, End, Flow, Performative, Transfer,
};
use tokio::sync::mpsc;

use crate::frame::write_amqp;
use crate::inbound::{Held, HeldBytes, Meter};
use crate::link::{
    AttachReply, Attaching, Command, Delivery, LinkEvent, LinkId, Outgoing, SessionId,
};

/// Room kept in a transfer frame for the performative: every field a transfer of ours
/// carries, at its widest, besides the delivery tag.
const TRANSFER_OVERHEAD: usize = 8 + 64;

/// Limits this side announces and enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub channel_max: u16,
    pub handle_max: u32,
    /// Transfer frames the peer may send before this side widens the window again.
    pub session_window: u32,
    /// Links open at once on one connection.
    pub max_links: usize,
}

/// How the peer's frames end the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Fatal {
    /// Close with this error.
    Error(Error),
    /// The peer closed; answer with a close.
    PeerClosed,
}

pub(crate) fn error(
    condition: impl Into<fe2o3_amqp_types::definitions::ErrorCondition>,
    description: &str,
) -> Error {
    Error::new(condition, Some(description.to_owned()), None)
}

#[derive(Debug)]
struct Partial {
    first: Delivery,
    buf: BytesMut,
    oversized: bool,
    /// `buf`'s bytes, counted against the connection and the process.
    held: Held,
}

/// One link's protocol state.
#[derive(Debug)]
struct LinkState {
    id: LinkId,
    name: String,
    /// This side's role.
    role: Role,
    events: mpsc::UnboundedSender<LinkEvent>,
    accepted: bool,
    /// This side sent a detach and waits for the peer's.
    detaching: bool,
    /// Deliveries, as the sender counts them (part 2, §2.6.7).
    delivery_count: u32,
    /// Credit the peer holds (receiving) or this side holds (sending).
    credit: u32,
    // Receiving links.
    credit_target: u32,
    max_message_size: u64,
    /// Deliveries handed to the service and not settled by it yet.
    outstanding: u32,
    /// Of those, the ones the peer did not settle itself: they need a disposition.
    awaiting_outcome: BTreeSet<u32>,
    partial: Option<Partial>,
    // Sending links.
    /// Credit announced to the link task and not used yet.
    announced: u32,
    /// Transfers of this link in the session's queue, not yet written whole.
    queued: u32,
    drain: bool,
    held: VecDeque<Outgoing>,
}

#[derive(Debug)]
struct QueuedTransfer {
    handle: u32,
    delivery_id: u32,
    send: Outgoing,
    /// Payload bytes already sent in earlier frames.
    offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
struct PendingDisposition {
    role: Role,
    first: u32,
    last: u32,
    state: DeliveryState,
}

#[derive(Debug)]
struct Session {
    id: SessionId,
    remote: u16,
    /// This side sent an end and waits for the peer's.
    ending: bool,
    handle_max: u32,
    next_outgoing_id: u32,
    remote_incoming_window: u32,
    next_incoming_id: u32,
    incoming_window: u32,
    next_delivery_id: u32,
    links: HashMap<u32, LinkState>,
    /// Deliveries this side sent that the peer has not settled: delivery id to handle and tag.
    unsettled: BTreeMap<u32, (u32, Bytes)>,
    queue: VecDeque<QueuedTransfer>,
    dispositions: Vec<PendingDisposition>,
}

/// The state of one open connection.
#[derive(Debug)]
pub struct Endpoint {
    limits: Limits,
    peer_max_frame: usize,
    sessions: BTreeMap<u16, Session>,
    by_remote: HashMap<u16, u16>,
    links: HashMap<LinkId, (u16, u32)>,
    next_link: u64,
    next_session: u64,
    commands: mpsc::Sender<Command>,
    /// Frames to write.
    pub out: Vec<u8>,
    /// Attaches for the service to answer.
    pub attaches: Vec<Attaching>,
    /// What the peer's messages hold in memory (`inbound.rs`).
    pub(crate) meter: Meter,
    /// The largest max-message-size of a link the peer sends on: the inbound limit must let
    /// one such message (and one waiting to be stored) through.
    largest_message: u64,
    /// Payload bytes in the sessions' queues, waiting for the peer's session window.
    queued_bytes: usize,
}

/// A sending link's task hears of no more credit than this many messages beyond what is
/// queued or held: a peer granting a million credits with a closed session window would
/// otherwise have the service lock or take a whole queue into memory.
const AHEAD: u32 = 64;
/// Above this many queued bytes per connection, no link hears of more credit until the peer
/// takes some (its window opens).
const MAX_QUEUED_BYTES: usize = 32 << 20;

impl Endpoint {
    pub fn new(limits: Limits, peer_max_frame: u32, commands: mpsc::Sender<Command>) -> Self {
        Endpoint {
            limits,
            peer_max_frame: peer_max_frame as usize,
            sessions: BTreeMap::new(),
            by_remote: HashMap::new(),
            links: HashMap::new(),
            next_link: 0,
            next_session: 0,
            commands,
            out: Vec::new(),
            attaches: Vec::new(),
            meter: Meter::unbounded(),
            largest_message: 0,
            queued_bytes: 0,
        }
    }

    /// The connection's inbound limit: `configured`, or room for two of its largest messages.
    pub(crate) fn inbound_limit(&self, configured: usize) -> usize {
        let two = usize::try_from(self.largest_message.saturating_mul(2)).unwrap_or(usize::MAX);
        configured.max(two)
    }

    /// Counts inbound bytes with `meter` (the connection's and the process's).
    pub(crate) fn with_meter(mut self, meter: Meter) -> Self {
        self.meter = meter;
        self
    }

    /// Links open now (attached or waiting for an answer).
    #[cfg(test)]
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    // ---- Frames from the peer ----------------------------------------------------------

    pub fn on_frame(
        &mut self,
        channel: u16,
        performative: Performative,
        payload: &[u8],
    ) -> Result<(), Fatal> {
        match performative {
            Performative::Open(_) => Err(Fatal::Error(error(
                AmqpError::IllegalState,
                "the connection is already open",
            ))),
            Performative::Close(_) => Err(Fatal::PeerClosed),
            Performative::Begin(begin) => self.on_begin(channel, begin),
            other => {
                let Some(&local) = self.by_remote.get(&channel) else {
                    return Err(Fatal::Error(error(
                        ConnectionError::FramingError,
                        "frame on a channel with no session",
                    )));
                };
                self.on_session_frame(local, other, payload);
                Ok(())
            }
        }
    }

    fn on_begin(&mut self, channel: u16, begin: Begin) -> Result<(), Fatal> {
        if begin.remote_channel.is_some() || self.by_remote.contains_key(&channel) {
            return Err(Fatal::Error(error(
                AmqpError::NotAllowed,
                "begin on a channel already in use, or answering a begin never sent",
            )));
        }
        let Some(local) = (0..=self.limits.channel_max).find(|c| !self.sessions.contains_key(c))
        else {
            return Err(Fatal::Error(error(
                ConnectionError::FramingError,
                "more sessions than channel-max",
            )));
        };
        self.next_session += 1;
        let session = Session {
            id: SessionId(self.next_session),
            remote: channel,
            ending: false,
            handle_max: self.limits.handle_max,
            next_outgoing_id: 0,
            remote_incoming_window: begin.incoming_window,
            next_incoming_id: begin.next_outgoing_id,
            incoming_window: self.limits.session_window,
            next_delivery_id: 0,
            links: HashMap::new(),
            unsettled: BTreeMap::new(),
            queue: VecDeque::new(),
            dispositions: Vec::new(),
        };
        let reply = Begin {
            remote_channel: Some(channel),
            next_outgoing_id: 0,
            incoming_window: self.limits.session_window,
            outgoing_window: u32::MAX,
            handle_max: self.limits.handle_max.into(),
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        };
        write_amqp(&mut self.out, local, &Performative::Begin(reply), &[]);
        self.sessions.insert(local, session);
        self.by_remote.insert(channel, local);
        Ok(())
    }

    fn on_session_frame(&mut self, local: u16, performative: Performative, payload: &[u8]) {
        if let Performative::End(_) = performative {
            self.on_end(local);
            return;
        }
        let ending = self.sessions.get(&local).is_none_or(|s| s.ending);
        if ending {
            // Frames in flight before the peer saw our end.
            return;
        }
        let result = match performative {
            Performative::Attach(attach) => self.on_attach(local, attach),
            Performative::Flow(flow) => self.on_flow(local, flow),
            Performative::Transfer(transfer) => self.on_transfer(local, transfer, payload),
            Performative::Disposition(d) => {
                self.on_disposition(local, d);
                Ok(())
            }
            Performative::Detach(detach) => self.on_detach(local, detach),
            Performative::Open(_)
            | Performative::Begin(_)
            | Performative::End(_)
            | Performative::Close(_) => Ok(()),
        };
        if let Err(e) = result {
            self.end_session(local, Some(e));
        }
    }

    fn on_end(&mut self, local: u16) {
        let Some(session) = self.sessions.remove(&local) else {
            return;
        };
        self.queued_bytes = self
            .queued_bytes
            .saturating_sub(queue_bytes(&session.queue, None));
        self.by_remote.remove(&session.remote);
        if !session.ending {
            let end = Performative::End(End { error: None });
            write_amqp(&mut self.out, local, &end, &[]);
        }
        for link in session.links.into_values() {
            self.links.remove(&link.id);
            let _ = link.events.send(LinkEvent::Detached(None));
        }
    }

    /// Ends a session from this side, with an error when the peer broke a rule.
    fn end_session(&mut self, local: u16, e: Option<Error>) {
        let Some(session) = self.sessions.get_mut(&local) else {
            return;
        };
        session.ending = true;
        self.queued_bytes = self
            .queued_bytes
            .saturating_sub(queue_bytes(&session.queue, None));
        session.queue.clear();
        for link in session.links.drain().map(|(_, l)| l) {
            self.links.remove(&link.id);
            let _ = link.events.send(LinkEvent::Detached(e.clone()));
        }
        write_amqp(
            &mut self.out,
            local,
            &Performative::End(End { error: e }),
            &[],
        );
    }

    fn on_attach(&mut self, local: u16, attach: Attach) -> Result<(), Error> {
        let at_cap = self.links.len() >= self.limits.max_links;
        let session = self.sessions.get_mut(&local).ok_or_else(gone)?;
        let handle = attach.handle.0;
        if session.links.contains_key(&handle) {
            return Err(error(SessionError::HandleInUse, "handle already attached"));
        }
        if handle > session.handle_max {
            return Err(error(
                SessionError::WindowViolation,
                "handle over handle-max",
            ));
        }
        let role = match attach.role {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        };
        if role == Role::Receiver && attach.initial_delivery_count.is_none() {
            return Err(error(
                AmqpError::InvalidField,
                "a sender's attach must carry initial-delivery-count",
            ));
        }
        self.next_link += 1;
        let id = LinkId(self.next_link);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let link = LinkState {
            id,
            name: attach.name.clone(),
            role,
            events: events_tx,
            accepted: false,
            detaching: false,
            delivery_count: attach.initial_delivery_count.unwrap_or(0),
            credit: 0,
            credit_target: 0,
            max_message_size: u64::MAX,
            outstanding: 0,
            awaiting_outcome: BTreeSet::new(),
            partial: None,
            announced: 0,
            queued: 0,
            drain: false,
            held: VecDeque::new(),
        };
        session.links.insert(handle, link);
        let session_id = session.id;
        self.links.insert(id, (local, handle));
        if at_cap {
            let e = error(
                AmqpError::ResourceLimitExceeded,
                "too many links on this connection",
            );
            self.refuse(id, e);
            return Ok(());
        }
        self.attaches.push(Attaching {
            attach,
            session: session_id,
            id,
            commands: self.commands.clone(),
            events: Some(events_rx),
        });
        Ok(())
    }

    fn on_flow(&mut self, local: u16, flow: Flow) -> Result<(), Error> {
        let session = self.sessions.get_mut(&local).ok_or_else(gone)?;
        // The peer's window as of this flow, less what this side sent since (§2.5.6).
        let next_incoming = flow.next_incoming_id.unwrap_or(0);
        session.remote_incoming_window = next_incoming
            .wrapping_add(flow.incoming_window)
            .wrapping_sub(session.next_outgoing_id);
        let Some(handle) = flow.handle.map(|h| h.0) else {
            if flow.echo {
                self.write_session_flow(local);
            }
            self.pump(local);
            return Ok(());
        };
        let link = session.links.get_mut(&handle).ok_or_else(|| {
            error(
                SessionError::UnattachedHandle,
                "flow on an unattached handle",
            )
        })?;
        if link.role == Role::Sender {
            // link-credit(snd) = delivery-count(rcv) + link-credit(rcv) - delivery-count(snd)
            let peer_count = flow.delivery_count.unwrap_or(link.delivery_count);
            let credit = flow.link_credit.unwrap_or(0);
            link.credit = peer_count
                .wrapping_add(credit)
                .wrapping_sub(link.delivery_count);
            if link.credit > credit {
                // The peer counted deliveries this side never sent: trust its figure.
                link.credit = credit;
            }
            if flow.drain && !link.drain {
                link.drain = true;
            }
        }
        let echo = flow.echo;
        self.release_held(local, handle);
        self.announce(local, handle);
        if echo {
            self.write_link_flow(local, handle, false);
        }
        self.pump(local);
        Ok(())
    }

    /// Moves sends held for lack of credit onto the session queue as credit allows.
    fn release_held(&mut self, local: u16, handle: u32) {
        let Some(session) = self.sessions.get_mut(&local) else {
            return;
        };
        let Some(link) = session.links.get_mut(&handle) else {
            return;
        };
        while link.credit > 0 {
            let Some(send) = link.held.pop_front() else {
                break;
            };
            link.credit -= 1;
            link.delivery_count = link.delivery_count.wrapping_add(1);
            let delivery_id = session.next_delivery_id;
            session.next_delivery_id = delivery_id.wrapping_add(1);
            if !send.settled {
                session
                    .unsettled
                    .insert(delivery_id, (handle, send.tag.clone()));
            }
            link.queued += 1;
            self.queued_bytes += send.payload.len();
            session.queue.push_back(QueuedTransfer {
                handle,
                delivery_id,
                send,
                offset: 0,
            });
        }
    }

    /// Tells a sending link's task about credit it has not heard of, and about a drain.
    fn announce(&mut self, local: u16, handle: u32) {
        let Some(link) = self
            .sessions
            .get_mut(&local)
            .and_then(|s| s.links.get_mut(&handle))
        else {
            return;
        };
        if link.role != Role::Sender || !link.accepted {
            return;
        }
        let ahead = link.announced + link.held.len() as u32;
        let room = AHEAD.saturating_sub(ahead + link.queued);
        let unheard = if self.queued_bytes >= MAX_QUEUED_BYTES {
            0
        } else {
            link.credit.saturating_sub(ahead).min(room)
        };
        if unheard > 0 {
            link.announced += unheard;
            let _ = link.events.send(LinkEvent::Credit(unheard));
        }
        if link.drain {
            let _ = link.events.send(LinkEvent::Drain);
        }
    }

    fn on_transfer(&mut self, local: u16, t: Transfer, payload: &[u8]) -> Result<(), Error> {
        let session = self.sessions.get_mut(&local).ok_or_else(gone)?;
        if session.incoming_window == 0 {
            return Err(error(
                SessionError::WindowViolation,
                "transfer beyond the session window",
            ));
        }
        session.incoming_window -= 1;
        session.next_incoming_id = session.next_incoming_id.wrapping_add(1);
        let handle = t.handle.0;
        let link = session.links.get_mut(&handle).ok_or_else(|| {
            error(
                SessionError::UnattachedHandle,
                "transfer on an unattached handle",
            )
        })?;
        if link.role != Role::Receiver {
            return Err(error(
                AmqpError::NotAllowed,
                "transfer on a link this side sends on",
            ));
        }
        let received = if link.detaching {
            Received::Nothing
        } else {
            receive_frame(link, t, payload, &self.meter)
        };
        let refilled =
            matches!(received, Received::Oversized { .. } | Received::Aborted) && refill(link);
        if session.incoming_window < self.limits.session_window / 2 {
            session.incoming_window = self.limits.session_window;
            self.write_session_flow(local);
        }
        match received {
            Received::Nothing => {}
            Received::Aborted => {
                if refilled {
                    self.write_link_flow(local, handle, false);
                }
            }
            Received::Detach(e) => self.detach_link(local, handle, Some(e)),
            Received::Oversized { id, settled } => {
                if !settled {
                    let e = error(
                        LinkError::MessageSizeExceeded,
                        "the message is larger than the link's max-message-size",
                    );
                    let state = DeliveryState::Rejected(Rejected { error: Some(e) });
                    self.queue_disposition(local, Role::Receiver, id, state);
                }
                if refilled {
                    self.write_link_flow(local, handle, false);
                }
            }
        }
        Ok(())
    }

    fn on_disposition(&mut self, local: u16, d: Disposition) {
        let Some(session) = self.sessions.get_mut(&local) else {
            return;
        };
        if d.role == Role::Sender {
            // The peer settling deliveries it sent: this side settled them already.
            return;
        }
        let last = d.last.unwrap_or(d.first);
        let ids: Vec<u32> = if d.first <= last {
            session
                .unsettled
                .range(d.first..=last)
                .map(|(k, _)| *k)
                .collect()
        } else {
            // The range wraps past u32::MAX.
            session
                .unsettled
                .range(d.first..)
                .chain(session.unsettled.range(..=last))
                .map(|(k, _)| *k)
                .collect()
        };
        for id in ids {
            let entry = if d.settled {
                session.unsettled.remove(&id)
            } else {
                session.unsettled.get(&id).cloned()
            };
            let Some((handle, tag)) = entry else {
                continue;
            };
            if let Some(link) = session.links.get(&handle) {
                let _ = link.events.send(LinkEvent::Disposition {
                    delivery: id,
                    tag,
                    settled: d.settled,
                    state: d.state.clone(),
                });
            }
        }
    }

    fn on_detach(&mut self, local: u16, detach: Detach) -> Result<(), Error> {
        let session = self.sessions.get_mut(&local).ok_or_else(gone)?;
        let handle = detach.handle.0;
        let link = session.links.remove(&handle).ok_or_else(|| {
            error(
                SessionError::UnattachedHandle,
                "detach of an unattached handle",
            )
        })?;
        session.unsettled.retain(|_, (h, _)| *h != handle);
        self.queued_bytes = self
            .queued_bytes
            .saturating_sub(queue_bytes(&session.queue, Some(handle)));
        session.queue.retain(|q| q.handle != handle);
        self.links.remove(&link.id);
        if !link.detaching {
            let _ = link.events.send(LinkEvent::Detached(detach.error));
            let reply = Detach {
                handle: handle.into(),
                closed: detach.closed,
                error: None,
            };
            write_amqp(&mut self.out, local, &Performative::Detach(reply), &[]);
        }
        Ok(())
    }

    // ---- Commands from link tasks ------------------------------------------------------

    pub fn on_command(&mut self, command: Command) {
        match command {
            Command::Accept { link, reply } => self.accept(link, *reply),
            Command::Refuse { link, error } => self.refuse(link, *error),
            Command::Send { link, send } => self.send(link, *send),
            Command::Settle {
                link,
                delivery,
                state,
            } => self.settle(link, delivery, *state),
            Command::Echo {
                link,
                delivery,
                state,
            } => self.echo(link, delivery, *state),
            Command::Drained { link } => self.drained(link),
            Command::Detach { link, error } => {
                if let Some(&(local, handle)) = self.links.get(&link) {
                    self.detach_link(local, handle, error.map(|e| *e));
                }
            }
        }
    }

    fn link_mut(&mut self, id: LinkId) -> Option<(u16, u32, &mut LinkState)> {
        let &(local, handle) = self.links.get(&id)?;
        let link = self.sessions.get_mut(&local)?.links.get_mut(&handle)?;
        Some((local, handle, link))
    }

    fn accept(&mut self, id: LinkId, reply: AttachReply) {
        let largest = reply.max_message_size.unwrap_or(u64::MAX);
        let Some((local, handle, link)) = self.link_mut(id) else {
            return;
        };
        if link.accepted || link.detaching {
            return;
        }
        link.accepted = true;
        let role = link.role.clone();
        let attach = Attach {
            name: link.name.clone(),
            handle: handle.into(),
            role: role.clone(),
            snd_settle_mode: reply.snd_settle_mode,
            rcv_settle_mode: reply.rcv_settle_mode,
            source: reply.source,
            target: reply.target,
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: (role == Role::Sender).then_some(link.delivery_count),
            max_message_size: reply.max_message_size,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: reply.properties,
        };
        if role == Role::Receiver {
            link.credit_target = reply.credit;
            link.max_message_size = reply.max_message_size.unwrap_or(u64::MAX);
            link.credit = reply.credit;
        }
        write_amqp(&mut self.out, local, &Performative::Attach(attach), &[]);
        if role == Role::Receiver {
            self.largest_message = self.largest_message.max(largest);
            self.write_link_flow(local, handle, false);
        } else {
            self.announce(local, handle);
        }
    }

    fn refuse(&mut self, id: LinkId, e: Error) {
        let Some((local, handle, link)) = self.link_mut(id) else {
            return;
        };
        if link.detaching {
            return;
        }
        if !link.accepted {
            link.accepted = true;
            let attach = Attach {
                name: link.name.clone(),
                handle: handle.into(),
                role: link.role.clone(),
                snd_settle_mode: Default::default(),
                rcv_settle_mode: ReceiverSettleMode::First,
                source: None,
                target: None,
                unsettled: None,
                incomplete_unsettled: false,
                initial_delivery_count: (link.role == Role::Sender).then_some(0),
                max_message_size: None,
                offered_capabilities: None,
                desired_capabilities: None,
                properties: None,
            };
            write_amqp(&mut self.out, local, &Performative::Attach(attach), &[]);
        }
        self.detach_link(local, handle, Some(e));
    }

    /// Detaches from this side; the link is forgotten when the peer's detach arrives.
    fn detach_link(&mut self, local: u16, handle: u32, e: Option<Error>) {
        let Some(session) = self.sessions.get_mut(&local) else {
            return;
        };
        let Some(link) = session.links.get_mut(&handle) else {
            return;
        };
        if link.detaching {
            return;
        }
        link.detaching = true;
        link.held.clear();
        link.partial = None;
        let _ = link.events.send(LinkEvent::Detached(e.clone()));
        self.queued_bytes = self
            .queued_bytes
            .saturating_sub(queue_bytes(&session.queue, Some(handle)));
        session.queue.retain(|q| q.handle != handle);
        let detach = Detach {
            handle: handle.into(),
            closed: true,
            error: e,
        };
        write_amqp(&mut self.out, local, &Performative::Detach(detach), &[]);
    }

    fn send(&mut self, id: LinkId, send: Outgoing) {
        let Some((local, handle, link)) = self.link_mut(id) else {
            return;
        };
        if link.role != Role::Sender || link.detaching {
            return;
        }
        link.announced = link.announced.saturating_sub(1);
        link.held.push_back(send);
        self.release_held(local, handle);
        self.pump(local);
    }

    fn settle(&mut self, id: LinkId, delivery: u32, state: DeliveryState) {
        let Some((local, handle, link)) = self.link_mut(id) else {
            return;
        };
        link.outstanding = link.outstanding.saturating_sub(1);
        let needs_outcome = link.awaiting_outcome.remove(&delivery);
        let replenish = refill(link);
        if needs_outcome {
            self.queue_disposition(local, Role::Receiver, delivery, state);
        }
        if replenish {
            self.write_link_flow(local, handle, false);
        }
    }

    fn echo(&mut self, id: LinkId, delivery: u32, state: DeliveryState) {
        let Some(&(local, handle)) = self.links.get(&id) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&local) else {
            return;
        };
        match session.unsettled.get(&delivery) {
            Some((h, _)) if *h == handle => {
                session.unsettled.remove(&delivery);
                self.queue_disposition(local, Role::Sender, delivery, state);
            }
            _ => {}
        }
    }

    fn drained(&mut self, id: LinkId) {
        let Some((local, handle, link)) = self.link_mut(id) else {
            return;
        };
        if !link.drain {
            return;
        }
        // Credit the link did not use is spent: the count advances past it (§2.6.7).
        let unused = link.credit.saturating_sub(link.held.len() as u32);
        link.delivery_count = link.delivery_count.wrapping_add(unused);
        link.credit -= unused;
        link.announced = 0;
        link.drain = false;
        self.write_link_flow(local, handle, true);
    }

    // ---- Output ------------------------------------------------------------------------

    fn queue_disposition(&mut self, local: u16, role: Role, id: u32, state: DeliveryState) {
        let Some(session) = self.sessions.get_mut(&local) else {
            return;
        };
        if let Some(last) = session.dispositions.last_mut() {
            if last.role == role && last.state == state && last.last.wrapping_add(1) == id {
                last.last = id;
                return;
            }
        }
        session.dispositions.push(PendingDisposition {
            role,
            first: id,
            last: id,
            state,
        });
    }

    /// Writes the dispositions queued on every session.
    pub fn flush(&mut self) {
        let channels: Vec<u16> = self.sessions.keys().copied().collect();
        for local in channels {
            self.flush_dispositions(local);
        }
    }

    fn flush_dispositions(&mut self, local: u16) {
        let Some(session) = self.sessions.get_mut(&local) else {
            return;
        };
        for d in session.dispositions.drain(..) {
            let disposition = Disposition {
                role: d.role,
                first: d.first,
                last: (d.last != d.first).then_some(d.last),
                settled: true,
                state: Some(d.state),
                batchable: false,
            };
            write_amqp(
                &mut self.out,
                local,
                &Performative::Disposition(disposition),
                &[],
            );
        }
    }

    fn write_session_flow(&mut self, local: u16) {
        let Some(s) = self.sessions.get(&local) else {
            return;
        };
        let flow = Flow {
            next_incoming_id: Some(s.next_incoming_id),
            incoming_window: s.incoming_window,
            next_outgoing_id: s.next_outgoing_id,
            outgoing_window: u32::MAX,
            handle: None,
            delivery_count: None,
            link_credit: None,
            available: None,
            drain: false,
            echo: false,
            properties: None,
        };
        write_amqp(&mut self.out, local, &Performative::Flow(flow), &[]);
    }

    fn write_link_flow(&mut self, local: u16, handle: u32, drain: bool) {
        let Some(s) = self.sessions.get(&local) else {
            return;
        };
        let Some(link) = s.links.get(&handle) else {
            return;
        };
        let flow = Flow {
            next_incoming_id: Some(s.next_incoming_id),
            incoming_window: s.incoming_window,
            next_outgoing_id: s.next_outgoing_id,
            outgoing_window: u32::MAX,
            handle: Some(handle.into()),
            delivery_count: Some(link.delivery_count),
            link_credit: Some(link.credit),
            available: None,
            drain,
            echo: false,
            properties: None,
        };
        write_amqp(&mut self.out, local, &Performative::Flow(flow), &[]);
    }

    /// Writes queued transfer frames while the peer's session window allows.
    fn pump(&mut self, local: u16) {
        let max_frame = self.peer_max_frame;
        let was_full = self.queued_bytes >= MAX_QUEUED_BYTES;
        let mut done: Vec<u32> = Vec::new();
        let Some(session) = self.sessions.get_mut(&local) else {
            return;
        };
        while session.remote_incoming_window > 0 {
            let Some(q) = session.queue.front_mut() else {
                break;
            };
            let room = max_frame
                .saturating_sub(TRANSFER_OVERHEAD + q.send.tag.len())
                .max(1);
            let first = q.offset == 0;
            let end = (q.offset + room).min(q.send.payload.len());
            let more = end < q.send.payload.len();
            let transfer = Transfer {
                handle: q.handle.into(),
                delivery_id: first.then_some(q.delivery_id),
                delivery_tag: first.then(|| serde_bytes::ByteBuf::from(q.send.tag.to_vec())),
                message_format: first.then_some(q.send.format),
                settled: Some(q.send.settled),
                more,
                rcv_settle_mode: None,
                state: None,
                resume: false,
                aborted: false,
                batchable: false,
            };
            write_amqp(
                &mut self.out,
                local,
                &Performative::Transfer(transfer),
                &q.send.payload[q.offset..end],
            );
            session.next_outgoing_id = session.next_outgoing_id.wrapping_add(1);
            session.remote_incoming_window -= 1;
            q.offset = end;
            if !more {
                let handle = q.handle;
                self.queued_bytes = self.queued_bytes.saturating_sub(q.send.payload.len());
                session.queue.pop_front();
                if let Some(link) = session.links.get_mut(&handle) {
                    link.queued = link.queued.saturating_sub(1);
                }
                if !done.contains(&handle) {
                    done.push(handle);
                }
            }
        }
        // Room made: the links whose transfers went out may hear of more credit, and every
        // sending link if the connection was over its queued bytes.
        if was_full && self.queued_bytes < MAX_QUEUED_BYTES {
            let all: Vec<(u16, u32)> = self
                .sessions
                .iter()
                .flat_map(|(l, s)| s.links.keys().map(move |h| (*l, *h)))
                .collect();
            for (l, h) in all {
                self.announce(l, h);
            }
        } else {
            for handle in done {
                self.announce(local, handle);
            }
        }
    }

    /// Every link learns the connection is gone.
    pub fn detach_all(&mut self, e: Option<Error>) {
        for session in self.sessions.values_mut() {
            for link in session.links.values() {
                if !link.detaching {
                    let _ = link.events.send(LinkEvent::Detached(e.clone()));
                }
            }
            session.links.clear();
        }
        self.links.clear();
    }
}

fn gone() -> Error {
    error(AmqpError::IllegalState, "session is gone")
}

/// Credit back up to the target once the peer holds less than half of it. Returns whether a
/// flow must go out.
fn refill(link: &mut LinkState) -> bool {
    let target = link.credit_target.saturating_sub(link.outstanding);
    if link.detaching || link.credit >= target || link.credit > link.credit_target / 2 {
        return false;
    }
    link.credit = target;
    true
}

/// What one transfer frame did on a receiving link.
enum Received {
    Nothing,
    /// The link must be detached with this error.
    Detach(Error),
    /// A delivery over the link's max-message-size ended: it is refused here, without the
    /// service.
    Oversized {
        id: u32,
        settled: bool,
    },
    /// The peer aborted a delivery: its credit is given back.
    Aborted,
}

/// The payload bytes queued in `queue`, of `handle`'s transfers or of all.
fn queue_bytes(queue: &VecDeque<QueuedTransfer>, handle: Option<u32>) -> usize {
    queue
        .iter()
        .filter(|q| handle.is_none_or(|h| q.handle == h))
        .map(|q| q.send.payload.len())
        .sum()
}

/// One transfer frame on a receiving link: a delivery's frames are assembled, up to the
/// link's max-message-size; past it the bytes are dropped as they come.
fn receive_frame(link: &mut LinkState, t: Transfer, payload: &[u8], meter: &Meter) -> Received {
    if link.partial.is_none() {
        if link.credit == 0 {
            return Received::Detach(error(
                LinkError::TransferLimitExceeded,
                "transfer without link credit",
            ));
        }
        let Some(id) = t.delivery_id else {
            return Received::Detach(error(
                AmqpError::InvalidField,
                "first transfer without delivery-id",
            ));
        };
        link.credit -= 1;
        link.delivery_count = link.delivery_count.wrapping_add(1);
        link.partial = Some(Partial {
            first: Delivery {
                id,
                tag: t
                    .delivery_tag
                    .map(|t| Bytes::from(t.into_vec()))
                    .unwrap_or_default(),
                format: t.message_format.unwrap_or(0),
                settled: false,
                payload: Bytes::new(),
                held: HeldBytes::default(),
            },
            buf: BytesMut::new(),
            oversized: false,
            held: meter.hold(0),
        });
    }
    let Some(partial) = link.partial.as_mut() else {
        return Received::Nothing;
    };
    if t.settled == Some(true) {
        partial.first.settled = true;
    }
    if t.aborted {
        link.partial = None;
        return Received::Aborted;
    }
    if (partial.buf.len() + payload.len()) as u64 > link.max_message_size {
        partial.oversized = true;
        partial.buf = BytesMut::new();
    } else if !partial.oversized {
        partial.buf.extend_from_slice(payload);
    }
    partial.held.set(partial.buf.len());
    if t.more {
        return Received::Nothing;
    }
    let Some(Partial {
        mut first,
        buf,
        oversized,
        held,
    }) = link.partial.take()
    else {
        return Received::Nothing;
    };
    if oversized {
        return Received::Oversized {
            id: first.id,
            settled: first.settled,
        };
    }
    first.payload = buf.freeze();
    first.held = HeldBytes(Some(std::sync::Arc::new(held)));
    if !first.settled {
        link.awaiting_outcome.insert(first.id);
    }
    link.outstanding += 1;
    let _ = link.events.send(LinkEvent::Transfer(first));
    Received::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode_performative, next_frame};
    use fe2o3_amqp_types::messaging::{Accepted, Modified, Source, Target};
    use fe2o3_amqp_types::performatives::Attach;

    const WINDOW: u32 = 8;

    struct Peer {
        endpoint: Endpoint,
        commands: mpsc::Receiver<Command>,
    }

    fn limits() -> Limits {
        Limits {
            channel_max: 3,
            handle_max: 15,
            session_window: WINDOW,
            max_links: 4,
        }
    }

    fn peer(max_frame: u32) -> Peer {
        let (tx, rx) = mpsc::channel(64);
        Peer {
            endpoint: Endpoint::new(limits(), max_frame, tx),
            commands: rx,
        }
    }

    /// Everything written since the last call, decoded.
    fn written(e: &mut Endpoint) -> Vec<(u16, Performative, Vec<u8>)> {
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some((f, used)) = next_frame(&e.out[at..], u32::MAX).expect("valid frame") {
            let (p, payload) = decode_performative(f.body).expect("decodes");
            frames.push((f.channel, p, payload.to_vec()));
            at += used;
        }
        e.out.clear();
        frames
    }

    fn begin(incoming_window: u32) -> Performative {
        Performative::Begin(Begin {
            remote_channel: None,
            next_outgoing_id: 0,
            incoming_window,
            outgoing_window: 100,
            handle_max: 100.into(),
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        })
    }

    fn attach(handle: u32, peer_role: Role) -> Performative {
        Performative::Attach(Attach {
            name: format!("link-{handle}"),
            handle: handle.into(),
            role: peer_role.clone(),
            snd_settle_mode: Default::default(),
            rcv_settle_mode: Default::default(),
            source: Some(Box::new(Source::default())),
            target: Some(Box::new(Target::default().into())),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: (peer_role == Role::Sender).then_some(7),
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        })
    }

    fn transfer(handle: u32, id: Option<u32>, more: bool, settled: bool) -> Performative {
        Performative::Transfer(Transfer {
            handle: handle.into(),
            delivery_id: id,
            delivery_tag: id.map(|i| serde_bytes::ByteBuf::from(vec![i as u8])),
            message_format: id.map(|_| 0),
            settled: Some(settled),
            more,
            rcv_settle_mode: None,
            state: None,
            resume: false,
            aborted: false,
            batchable: false,
        })
    }

    fn link_flow(handle: u32, delivery_count: u32, credit: u32, drain: bool) -> Performative {
        Performative::Flow(Flow {
            next_incoming_id: Some(0),
            incoming_window: 1000,
            next_outgoing_id: 0,
            outgoing_window: 1000,
            handle: Some(handle.into()),
            delivery_count: Some(delivery_count),
            link_credit: Some(credit),
            available: None,
            drain,
            echo: false,
            properties: None,
        })
    }

    /// Opens session 0 and attaches `handle`, accepted with `reply`; returns the link.
    fn attached(p: &mut Peer, handle: u32, peer_role: Role, reply: AttachReply) -> crate::Link {
        if p.endpoint.sessions.is_empty() {
            p.endpoint.on_frame(5, begin(1000), &[]).expect("begin");
        }
        p.endpoint
            .on_frame(5, attach(handle, peer_role), &[])
            .expect("attach");
        let attaching = p
            .endpoint
            .attaches
            .pop()
            .expect("an attach for the service");
        let link = futures_block(attaching.accept(reply)).expect("accepted");
        run_commands(p);
        link
    }

    /// A peer that sends on link 0, which we granted `credit`; what was written so far is
    /// read and dropped.
    fn sending_peer(credit: u32) -> (Peer, crate::Link) {
        let mut p = peer(65536);
        let reply = AttachReply {
            credit,
            ..Default::default()
        };
        let link = attached(&mut p, 0, Role::Sender, reply);
        written(&mut p.endpoint);
        (p, link)
    }

    fn run_commands(p: &mut Peer) {
        while let Ok(c) = p.commands.try_recv() {
            p.endpoint.on_command(c);
        }
        p.endpoint.flush();
    }

    fn futures_block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn events(link: &mut crate::Link) -> Vec<LinkEvent> {
        let mut all = Vec::new();
        while let Ok(e) = link.events.try_recv() {
            all.push(e);
        }
        all
    }

    #[test]
    fn a_begin_is_answered_on_the_lowest_free_channel() {
        let mut p = peer(65536);
        p.endpoint.on_frame(9, begin(10), &[]).expect("begin");
        let out = written(&mut p.endpoint);
        let [(0, Performative::Begin(b), _)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(b.remote_channel, Some(9));
        assert_eq!(b.incoming_window, WINDOW);
        // A second begin on the same channel breaks the protocol.
        assert!(p.endpoint.on_frame(9, begin(10), &[]).is_err());
    }

    #[test]
    fn a_sending_peer_gets_credit_and_each_message_one_settled_outcome() {
        let mut p = peer(65536);
        let reply = AttachReply {
            credit: 4,
            max_message_size: Some(1000),
            ..Default::default()
        };
        let mut link = attached(&mut p, 1, Role::Sender, reply);
        let out = written(&mut p.endpoint);
        assert!(
            matches!(&out[1], (0, Performative::Attach(a), _) if a.role == Role::Receiver && a.initial_delivery_count.is_none())
        );
        let (_, Performative::Flow(f), _) = &out[2] else {
            panic!("{out:?}")
        };
        // The flow starts from the sender's initial delivery count.
        assert_eq!((f.delivery_count, f.link_credit), (Some(7), Some(4)));

        p.endpoint
            .on_frame(5, transfer(1, Some(0), false, false), b"hello")
            .expect("transfer");
        let ev = events(&mut link);
        let [LinkEvent::Transfer(d)] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!((d.id, &d.payload[..], d.settled), (0, &b"hello"[..], false));
        futures_block(link.handle.settle(0, DeliveryState::Accepted(Accepted {})));
        run_commands(&mut p);
        let out = written(&mut p.endpoint);
        let (_, Performative::Disposition(disp), _) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(disp.settled && disp.role == Role::Receiver && disp.first == 0);
        assert_eq!(disp.state, Some(DeliveryState::Accepted(Accepted {})));
    }

    #[test]
    fn a_message_in_several_frames_arrives_whole() {
        let mut p = peer(65536);
        let reply = AttachReply {
            credit: 2,
            ..Default::default()
        };
        let mut link = attached(&mut p, 0, Role::Sender, reply);
        p.endpoint
            .on_frame(5, transfer(0, Some(3), true, false), b"ab")
            .expect("1");
        p.endpoint
            .on_frame(5, transfer(0, None, true, false), b"cd")
            .expect("2");
        assert!(events(&mut link).is_empty());
        p.endpoint
            .on_frame(5, transfer(0, None, false, false), b"e")
            .expect("3");
        let ev = events(&mut link);
        assert!(
            matches!(&ev[..], [LinkEvent::Transfer(d)] if &d.payload[..] == b"abcde" && d.id == 3)
        );
    }

    proptest::proptest! {
        /// Messages cut into frames at any points arrive whole and in order, and a message
        /// over the link's limit is rejected however it is cut, without reaching the service.
        #[test]
        fn messages_cut_anywhere_arrive_whole(
            messages in proptest::collection::vec(
                (proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                 proptest::collection::vec(1usize..64, 1..6)),
                1..6,
            ),
        ) {
            let mut p = peer(65536);
            let reply = AttachReply {
                credit: 10,
                max_message_size: Some(200),
                ..Default::default()
            };
            let mut link = attached(&mut p, 0, Role::Sender, reply);
            let mut expected = Vec::new();
            for (i, (body, cuts)) in messages.iter().enumerate() {
                let id = i as u32;
                let mut at = 0;
                let mut first = true;
                let mut c = 0;
                loop {
                    let n = cuts[c % cuts.len()].min(body.len() - at);
                    c += 1;
                    let last = at + n == body.len();
                    let t = transfer(0, first.then_some(id), !last, false);
                    p.endpoint.on_frame(5, t, &body[at..at + n]).expect("frame");
                    // Keep the session window open, as a peer's flow would.
                    if let Some(s) = p.endpoint.sessions.values_mut().next() {
                        s.incoming_window = WINDOW;
                    }
                    at += n;
                    first = false;
                    if last {
                        break;
                    }
                }
                if body.len() <= 200 {
                    expected.push((id, body.clone()));
                }
            }
            let got: Vec<(u32, Vec<u8>)> = events(&mut link)
                .into_iter()
                .filter_map(|e| match e {
                    LinkEvent::Transfer(d) => Some((d.id, d.payload.to_vec())),
                    _ => None,
                })
                .collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }

    /// An aborted delivery used a credit but never reaches the service, so no settlement
    /// would give it back: a sender aborting enough of them stalled for good.
    #[test]
    fn aborted_deliveries_give_their_credit_back() {
        let (mut p, mut link) = sending_peer(2);
        for id in 0..2 {
            let Performative::Transfer(mut t) = transfer(0, Some(id), false, false) else {
                panic!()
            };
            t.aborted = true;
            p.endpoint
                .on_frame(5, Performative::Transfer(t), b"x")
                .expect("aborted");
        }
        let flows = written(&mut p.endpoint)
            .into_iter()
            .filter(|(_, p, _)| matches!(p, Performative::Flow(f) if f.link_credit == Some(2)))
            .count();
        assert!(flows >= 1, "credit given back");
        p.endpoint
            .on_frame(5, transfer(0, Some(2), false, false), b"ok")
            .expect("a new transfer within the credit");
        assert!(
            matches!(&events(&mut link)[..], [LinkEvent::Transfer(d)] if &d.payload[..] == b"ok")
        );
    }

    #[test]
    fn credit_is_refilled_only_as_the_service_settles() {
        let (mut p, mut link) = sending_peer(4);
        for id in 0..4 {
            p.endpoint
                .on_frame(5, transfer(0, Some(id), false, true), b"m")
                .expect("t");
        }
        assert_eq!(events(&mut link).len(), 4);
        // Credit is spent and nothing is settled: a fifth message breaks the link's credit.
        p.endpoint
            .on_frame(5, transfer(0, Some(4), false, true), b"m")
            .expect("t");
        let out = written(&mut p.endpoint);
        let detach = out.iter().find_map(|(_, p, _)| match p {
            Performative::Detach(d) => Some(d.clone()),
            _ => None,
        });
        let condition = detach.and_then(|d| d.error).map(|e| e.condition);
        assert_eq!(condition, Some(LinkError::TransferLimitExceeded.into()));
    }

    #[test]
    fn settling_refills_credit_less_what_is_still_with_the_service() {
        let (mut p, mut link) = sending_peer(4);
        for id in 0..3 {
            p.endpoint
                .on_frame(5, transfer(0, Some(id), false, true), b"m")
                .expect("t");
        }
        events(&mut link);
        futures_block(link.handle.settle(0, DeliveryState::Accepted(Accepted {})));
        run_commands(&mut p);
        let out = written(&mut p.endpoint);
        // Pre-settled deliveries need no disposition; the peer holds 1 of 4, 2 are still
        // with the service: credit goes back to 2.
        assert!(
            matches!(&out[..], [(_, Performative::Flow(f), _)] if f.link_credit == Some(2)),
            "{out:?}"
        );
    }

    #[test]
    fn an_oversized_message_is_rejected_without_reaching_the_service() {
        let mut p = peer(65536);
        let reply = AttachReply {
            credit: 2,
            max_message_size: Some(4),
            ..Default::default()
        };
        let mut link = attached(&mut p, 0, Role::Sender, reply);
        written(&mut p.endpoint);
        p.endpoint
            .on_frame(5, transfer(0, Some(0), true, false), b"abc")
            .expect("1");
        p.endpoint
            .on_frame(5, transfer(0, None, false, false), b"de")
            .expect("2");
        assert!(events(&mut link).is_empty());
        p.endpoint.flush();
        let out = written(&mut p.endpoint);
        let Some(d) = out.iter().find_map(|(_, p, _)| match p {
            Performative::Disposition(d) => Some(d),
            _ => None,
        }) else {
            panic!("{out:?}")
        };
        let Some(DeliveryState::Rejected(Rejected { error: Some(e) })) = &d.state else {
            panic!("{d:?}")
        };
        assert_eq!(e.condition, LinkError::MessageSizeExceeded.into());
    }

    #[test]
    fn a_receiving_peer_gets_what_its_credit_allows_with_our_tags() {
        let mut p = peer(65536);
        let mut link = attached(&mut p, 2, Role::Receiver, AttachReply::default());
        let out = written(&mut p.endpoint);
        assert!(
            matches!(&out[1], (_, Performative::Attach(a), _) if a.initial_delivery_count == Some(0))
        );
        assert!(events(&mut link).is_empty());
        p.endpoint
            .on_frame(5, link_flow(2, 0, 2, false), &[])
            .expect("flow");
        assert_eq!(events(&mut link), vec![LinkEvent::Credit(2)]);
        for i in 0..3u8 {
            let tag = Bytes::from(vec![i; 16]);
            futures_block(link.handle.send(tag, 0, Bytes::from_static(b"body"), false));
        }
        run_commands(&mut p);
        let out = written(&mut p.endpoint);
        // The third waits for credit.
        assert_eq!(out.len(), 2);
        let (_, Performative::Transfer(t), payload) = &out[1] else {
            panic!()
        };
        assert_eq!(t.delivery_id, Some(1));
        assert_eq!(
            t.delivery_tag.as_ref().map(|t| t.to_vec()),
            Some(vec![1u8; 16])
        );
        assert_eq!(payload, b"body");
        p.endpoint
            .on_frame(5, link_flow(2, 2, 1, false), &[])
            .expect("flow");
        let out = written(&mut p.endpoint);
        assert!(
            matches!(&out[..], [(_, Performative::Transfer(t), _)] if t.delivery_id == Some(2))
        );
    }

    /// A peer granting a huge credit while its session window holds only a few transfers
    /// must not have the service produce everything at once: the link task hears of at
    /// most AHEAD messages beyond what waits in the session's queue.
    #[test]
    fn a_large_credit_is_announced_only_as_far_as_the_queue_allows() {
        let mut p = peer(65536);
        let mut link = attached(&mut p, 2, Role::Receiver, AttachReply::default());
        written(&mut p.endpoint);
        // A million credits, a window of eight transfers.
        let mut flow = link_flow(2, 0, 1_000_000, false);
        if let Performative::Flow(f) = &mut flow {
            f.incoming_window = 8;
        }
        p.endpoint.on_frame(5, flow, &[]).expect("flow");
        assert_eq!(events(&mut link), vec![LinkEvent::Credit(AHEAD)]);
        for i in 0..AHEAD {
            let tag = Bytes::from(i.to_be_bytes().to_vec());
            futures_block(link.handle.send(tag, 0, Bytes::from_static(b"body"), false));
        }
        run_commands(&mut p);
        // The window let eight of them out; only that much more credit is heard of.
        let heard: u32 = events(&mut link)
            .iter()
            .map(|e| match e {
                LinkEvent::Credit(n) => *n,
                _ => 0,
            })
            .sum();
        let sent = written(&mut p.endpoint)
            .iter()
            .filter(|(_, p, _)| matches!(p, Performative::Transfer(_)))
            .count() as u32;
        assert_eq!(sent, 8, "the window's worth went out");
        assert_eq!(heard, sent, "credit heard again only for what went out");
    }

    #[test]
    fn peer_dispositions_reach_the_link_and_echoes_go_out_as_ranges() {
        let mut p = peer(65536);
        let mut link = attached(&mut p, 2, Role::Receiver, AttachReply::default());
        p.endpoint
            .on_frame(5, link_flow(2, 0, 3, false), &[])
            .expect("flow");
        for i in 0..3u8 {
            futures_block(link.handle.send(
                Bytes::from(vec![i; 16]),
                0,
                Bytes::from_static(b"x"),
                false,
            ));
        }
        run_commands(&mut p);
        written(&mut p.endpoint);
        events(&mut link);
        let modified = DeliveryState::Modified(Modified {
            delivery_failed: Some(true),
            undeliverable_here: None,
            message_annotations: None,
        });
        let d = Disposition {
            role: Role::Receiver,
            first: 0,
            last: Some(2),
            settled: false,
            state: Some(modified.clone()),
            batchable: false,
        };
        p.endpoint
            .on_frame(5, Performative::Disposition(d), &[])
            .expect("disposition");
        let ev = events(&mut link);
        assert_eq!(ev.len(), 3);
        assert!(
            matches!(&ev[2], LinkEvent::Disposition { delivery: 2, settled: false, tag, .. } if tag[..] == [2u8; 16])
        );
        for id in 0..3 {
            futures_block(link.handle.echo(id, modified.clone()));
        }
        run_commands(&mut p);
        let out = written(&mut p.endpoint);
        let [(_, Performative::Disposition(echo), _)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(
            (echo.role.clone(), echo.first, echo.last, echo.settled),
            (Role::Sender, 0, Some(2), true)
        );
        // Once settled, a second echo writes nothing.
        futures_block(link.handle.echo(1, modified));
        run_commands(&mut p);
        assert!(written(&mut p.endpoint).is_empty());
    }

    #[test]
    fn a_drain_spends_the_unused_credit() {
        let mut p = peer(65536);
        let mut link = attached(&mut p, 0, Role::Receiver, AttachReply::default());
        p.endpoint
            .on_frame(5, link_flow(0, 0, 5, true), &[])
            .expect("flow");
        assert_eq!(
            events(&mut link),
            vec![LinkEvent::Credit(5), LinkEvent::Drain]
        );
        futures_block(link.handle.send(
            Bytes::from(vec![0; 16]),
            0,
            Bytes::from_static(b"x"),
            true,
        ));
        futures_block(link.handle.drained());
        run_commands(&mut p);
        let out = written(&mut p.endpoint);
        let (_, Performative::Flow(f), _) = out.last().expect("a flow") else {
            panic!("{out:?}")
        };
        assert_eq!(
            (f.delivery_count, f.link_credit, f.drain),
            (Some(5), Some(0), true)
        );
    }

    #[test]
    fn large_messages_are_split_to_the_peers_frame_size_and_wait_for_its_window() {
        let mut p = peer(512);
        p.endpoint.on_frame(5, begin(2), &[]).expect("begin");
        let mut link = attached(&mut p, 0, Role::Receiver, AttachReply::default());
        let mut credit = link_flow(0, 0, 1, false);
        if let Performative::Flow(f) = &mut credit {
            f.incoming_window = 2;
        }
        p.endpoint.on_frame(5, credit, &[]).expect("flow");
        events(&mut link);
        let body: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
        futures_block(link.handle.send(
            Bytes::from(vec![9; 16]),
            0,
            Bytes::from(body.clone()),
            false,
        ));
        run_commands(&mut p);
        let out = written(&mut p.endpoint);
        let transfers: Vec<_> = out
            .iter()
            .filter_map(|(_, p, payload)| match p {
                Performative::Transfer(t) => Some((t.clone(), payload.clone())),
                _ => None,
            })
            .collect();
        // The peer's window was 2 frames.
        assert_eq!(transfers.len(), 2);
        assert!(transfers.iter().all(|(t, _)| t.more));
        let session_flow = Performative::Flow(Flow {
            next_incoming_id: Some(2),
            incoming_window: 100,
            next_outgoing_id: 0,
            outgoing_window: 100,
            handle: None,
            delivery_count: None,
            link_credit: None,
            available: None,
            drain: false,
            echo: false,
            properties: None,
        });
        p.endpoint.on_frame(5, session_flow, &[]).expect("flow");
        let rest = written(&mut p.endpoint);
        let mut all: Vec<u8> = transfers.iter().flat_map(|(_, b)| b.clone()).collect();
        let mut frames = transfers.len();
        for (_, perf, payload) in &rest {
            let Performative::Transfer(t) = perf else {
                continue;
            };
            all.extend_from_slice(payload);
            frames += 1;
            // Continuation frames carry no delivery-id, so pyamqp keeps the first frame's.
            assert!(t.delivery_id.is_none());
        }
        assert_eq!(all, body);
        assert!(frames >= 2000 / 512);
        let mut buf = Vec::new();
        for (c, perf, payload) in &rest {
            write_amqp(&mut buf, *c, perf, payload);
        }
        let mut at = 0;
        while let Some((f, used)) = next_frame(&buf[at..], u32::MAX).expect("frame") {
            assert!(used <= 512, "a frame of {used} bytes");
            let _ = f;
            at += used;
        }
    }

    #[test]
    fn a_peer_detach_is_answered_and_reported() {
        let mut p = peer(65536);
        let mut link = attached(&mut p, 3, Role::Sender, AttachReply::default());
        written(&mut p.endpoint);
        let detach = Detach {
            handle: 3.into(),
            closed: true,
            error: None,
        };
        p.endpoint
            .on_frame(5, Performative::Detach(detach), &[])
            .expect("detach");
        assert_eq!(events(&mut link), vec![LinkEvent::Detached(None)]);
        let out = written(&mut p.endpoint);
        assert!(
            matches!(&out[..], [(_, Performative::Detach(d), _)] if d.closed && d.handle.0 == 3)
        );
        // The handle can be attached again.
        p.endpoint
            .on_frame(5, attach(3, Role::Sender), &[])
            .expect("attach");
        assert_eq!(p.endpoint.attaches.len(), 1);
    }

    #[test]
    fn an_end_detaches_every_link_of_the_session() {
        let mut p = peer(65536);
        let mut a = attached(&mut p, 0, Role::Sender, AttachReply::default());
        let mut b = attached(&mut p, 1, Role::Receiver, AttachReply::default());
        written(&mut p.endpoint);
        p.endpoint
            .on_frame(5, Performative::End(End { error: None }), &[])
            .expect("end");
        assert_eq!(events(&mut a), vec![LinkEvent::Detached(None)]);
        assert_eq!(events(&mut b), vec![LinkEvent::Detached(None)]);
        assert!(matches!(
            &written(&mut p.endpoint)[..],
            [(0, Performative::End(_), _)]
        ));
        assert_eq!(p.endpoint.link_count(), 0);
    }

    #[test]
    fn links_past_the_cap_are_refused_with_resource_limit_exceeded() {
        let mut p = peer(65536);
        p.endpoint.on_frame(5, begin(100), &[]).expect("begin");
        for h in 0..4 {
            p.endpoint
                .on_frame(5, attach(h, Role::Sender), &[])
                .expect("attach");
        }
        written(&mut p.endpoint);
        p.endpoint
            .on_frame(5, attach(9, Role::Sender), &[])
            .expect("attach");
        assert_eq!(p.endpoint.attaches.len(), 4);
        let out = written(&mut p.endpoint);
        let (_, Performative::Attach(a), _) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(a.source.is_none() && a.target.is_none());
        let (_, Performative::Detach(d), _) = &out[1] else {
            panic!("{out:?}")
        };
        let condition = d.error.as_ref().map(|e| e.condition.clone());
        assert_eq!(condition, Some(AmqpError::ResourceLimitExceeded.into()));
    }

    #[test]
    fn an_unanswered_attach_is_refused_when_dropped() {
        let mut p = peer(65536);
        p.endpoint.on_frame(5, begin(100), &[]).expect("begin");
        p.endpoint
            .on_frame(5, attach(0, Role::Sender), &[])
            .expect("attach");
        written(&mut p.endpoint);
        drop(p.endpoint.attaches.pop());
        run_commands(&mut p);
        let out = written(&mut p.endpoint);
        assert!(
            matches!(&out[..], [(_, Performative::Attach(_), _), (_, Performative::Detach(d), _)] if d.error.is_some())
        );
    }

    #[test]
    fn transfers_beyond_the_session_window_end_the_session() {
        let mut p = peer(65536);
        let mut link = attached(
            &mut p,
            0,
            Role::Sender,
            AttachReply {
                credit: 100,
                ..Default::default()
            },
        );
        written(&mut p.endpoint);
        // Our window is refreshed at half, so honest peers never see it close: eight in a
        // row without reading our flows is still within it.
        for id in 0..WINDOW * 2 {
            p.endpoint
                .on_frame(5, transfer(0, Some(id), false, true), b"m")
                .expect("t");
        }
        assert_eq!(events(&mut link).len(), (WINDOW * 2) as usize);
        let flows = written(&mut p.endpoint)
            .into_iter()
            .filter(|(_, p, _)| matches!(p, Performative::Flow(f) if f.handle.is_none()))
            .count();
        assert!(flows >= 2);
    }

    #[test]
    fn dispositions_over_a_wrapped_range_reach_every_delivery() {
        let mut p = peer(65536);
        let mut link = attached(&mut p, 0, Role::Receiver, AttachReply::default());
        let session = p.endpoint.sessions.get_mut(&0).expect("session");
        session.next_delivery_id = u32::MAX - 1;
        p.endpoint
            .on_frame(5, link_flow(0, 0, 4, false), &[])
            .expect("flow");
        for i in 0..4u8 {
            futures_block(link.handle.send(
                Bytes::from(vec![i; 16]),
                0,
                Bytes::from_static(b"x"),
                false,
            ));
        }
        run_commands(&mut p);
        events(&mut link);
        let d = Disposition {
            role: Role::Receiver,
            first: u32::MAX - 1,
            last: Some(1),
            settled: true,
            state: Some(DeliveryState::Accepted(Accepted {})),
            batchable: false,
        };
        p.endpoint
            .on_frame(5, Performative::Disposition(d), &[])
            .expect("disposition");
        assert_eq!(events(&mut link).len(), 4);
        assert!(p.endpoint.sessions[&0].unsettled.is_empty());
    }
}
