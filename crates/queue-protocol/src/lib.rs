//! Azure Queue Storage REST wire format, shared by the server front and the client.
//!
//! Placeholder: being written.
