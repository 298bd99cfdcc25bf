//! Trackers: announce/scrape types (sans-IO), the HTTP and UDP tracker server, the client.
