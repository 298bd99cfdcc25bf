//! Torrent data over memory-mapped files: files laid end to end, pieces mapped to extents.
