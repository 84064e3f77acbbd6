//! End-to-end tests of the HTTP API against a real server on a random port. Storage is SQLite in a
//! fresh file per test, or a fresh PostgreSQL database per test when
//! `WRENCHLINE_TEST_POSTGRES_URL` names a server (the suite is run once for each engine).

mod attachments;
mod authorization;
mod availability;
mod cli;
mod client;
mod client_media;
mod helpers;
mod intake;
mod lifecycle;
mod limits;
mod mail;
mod mechanic_session;
mod messages;
mod meta;
mod realtime;
mod realtime_limits;
mod reliability;
mod retention;
mod reviews;
mod secrets;
mod security;
mod sign_in;
mod smtp;
mod updates;
mod validation;
mod waiting_room;
