//! Wire types shared by the server, the Rust client and the desktop app: the session model, the
//! HTTP bodies, intake validation and presence matching. Nothing here performs I/O.

pub mod api;
pub mod intake;
pub mod model;
pub mod presence;
pub mod realtime;
pub mod review;
pub mod text;
pub mod vin;
pub mod waiting;

pub use api::*;
pub use intake::{FieldErrors, Intake, IntakeRequest, VehicleInput};
pub use model::*;
pub use review::*;
pub use waiting::WaitingRoom;
