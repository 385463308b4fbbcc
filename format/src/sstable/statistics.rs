//! Statistics (being written).
