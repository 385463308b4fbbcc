//! SSTable sources (being written).
