//! `talus-tests`: integration, model-based, crash, corruption and simulation tests of Talus that
//! use only public APIs (DESIGN §9).
//!
//! The library holds what the test binaries share: [`oracle`], the naive model of the data model
//! that model-based tests compare the engine against; [`durability`], the crash workload and the
//! checker of the durability promises; [`report`], the JSON reports of the campaigns.

pub mod batchlog;
pub mod durability;
pub mod fixture;
pub mod oracle;
pub mod report;
