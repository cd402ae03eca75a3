//! One file per table: the row structs and the queries on that table.

pub mod callback;
pub mod event;
pub mod fraud;
pub mod request;
pub mod webhook;
