//! `talus-tests`: integration, model-based, crash, corruption and simulation tests of Talus that
//! use only public APIs (DESIGN §9).
//!
//! The library holds what the test binaries share: [`oracle`], the naive model of the data model
//! that model-based tests compare the engine against.

pub mod fixture;
pub mod oracle;
