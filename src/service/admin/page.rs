//! The status page served at `/`: one self-contained HTML document (inline CSS, script and an
//! SVG chart; no external assets) that polls `/api/v1/torrents` every second and draws the
//! torrents and the upload rate of the last ten minutes. It carries no data itself, so it is
//! served without the token; the page asks for the token (or takes it from `#token=...` in the
//! address) and sends it with its API calls.

/// The page.
pub const HTML: &str = include_str!("status.html");

/// Its `Content-Type`.
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// The `Content-Security-Policy` it is served with: nothing but itself and the API.
pub const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for needle in ["http://", "https://", "src=", "<link", "@import", "url("] {
            let hits: Vec<&str> = HTML
                .lines()
                .filter(|l| l.contains(needle) && !l.contains("http://www.w3.org/2000/svg"))
                .collect();
            assert!(hits.is_empty(), "{needle}: {hits:?}");
        }
        assert!(HTML.contains("/api/v1/torrents"));
        assert!(HTML.contains("<svg id=\"chart\""));
    }

    #[test]
    fn torrent_data_is_inserted_as_text_only() {
        assert!(!HTML.contains("innerHTML"));
        assert!(!HTML.contains("insertAdjacentHTML"));
        assert!(!HTML.contains("document.write"));
    }
}
