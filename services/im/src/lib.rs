//! Tencent Cloud IM, as imbridge sees it.
//!
//! - [`usersig`]: TLSSigAPIv2 UserSig generation and verification (also used by the emulator).
pub mod usersig;
