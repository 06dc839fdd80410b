#![forbid(unsafe_code)]
// Library code must not panic on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]
#![doc = include_str!("../README.md")]

pub mod bounds;
mod deadline;
#[cfg(feature = "axum")]
pub mod http;
mod ids;
pub mod jwt;
pub mod layer;
#[cfg(feature = "ldap")]
pub mod ldap;
mod ldap_spec;
pub mod lockout;
pub mod oidc;
mod oidc_spec;
pub mod password;
pub mod refresh;
#[cfg(feature = "saml")]
pub mod saml;
mod saml_spec;
pub mod service;
pub mod session;
pub mod spec;
pub mod totp;
pub mod users;
