//! Operation handlers, one module per resource family: the account (`service`), a queue
//! (`queues`) and its messages (`messages`). Each handler parses its own parameters and body,
//! calls the engine once or twice, and shapes the Azure response.

pub mod messages;
pub mod queues;
pub mod service;
