//! The report as one self-contained HTML page: the style sheet, script and body in
//! `src/export/report/`, the data as script-safe JSON, and a Content-Security-Policy that admits
//! only them. Renders; never aggregates.

use super::Report;
use crate::export::record::RunReport;
use crate::export::summary::Summary;
use std::io::{self, Write};

/// The page's style sheet.
const STYLE: &str = include_str!("report.css");
/// The page's script.
const SCRIPT: &str = include_str!("report.js");
/// The page's body, before the data and the script.
const BODY: &str = include_str!("body.html");

impl Report {
    /// Writes the page: the summary's totals, this report's aggregates, the input `files` named.
    pub fn write_html<W: Write>(
        &self,
        mut out: W,
        summary: &Summary,
        run: &RunReport,
        files: &[String],
    ) -> io::Result<()> {
        let json =
            serde_json::to_string(&self.data(summary, run, files)).map_err(io::Error::other)?;
        write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
             <title>Picket report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{BODY}\
             <script type=\"application/json\" id=\"picket-data\">{data}</script>\n\
             <script>{SCRIPT}</script>\n</body>\n</html>\n",
            csp = content_security_policy(),
            data = script_safe(&json),
        )?;
        out.flush()
    }
}

/// The page's policy: its own script and style sheet, by hash; nothing else, no requests.
fn content_security_policy() -> String {
    format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
         base-uri 'none'; form-action 'none'",
        sha256_base64(SCRIPT),
        sha256_base64(STYLE)
    )
}

/// The SHA-256 of `text` in standard base64 with padding, as a CSP hash source wants it.
fn sha256_base64(text: &str) -> String {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
}

/// JSON text made safe inside a `<script>` element: `<`, `>` and `&` (which JSON allows only
/// inside strings) become `\u` escapes, so no `</script>` or `<!--` can appear; so do U+2028 and
/// U+2029.
pub fn script_safe(json: &str) -> String {
    let mut s = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => s.push_str("\\u003c"),
            '>' => s.push_str("\\u003e"),
            '&' => s.push_str("\\u0026"),
            '\u{2028}' => s.push_str("\\u2028"),
            '\u{2029}' => s.push_str("\\u2029"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_safe_leaves_no_tag_in_the_data() {
        let hostile = "</script><script>alert(1)</script><!-- & \u{2028}";
        let json = serde_json::to_string(&hostile).unwrap();
        let safe = script_safe(&json);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        assert_eq!(serde_json::from_str::<String>(&safe).unwrap(), hostile);
    }

    #[test]
    fn page_assets_cannot_close_their_elements() {
        assert!(!SCRIPT.to_ascii_lowercase().contains("</script"));
        assert!(!STYLE.to_ascii_lowercase().contains("</style"));
        assert!(!BODY.to_ascii_lowercase().contains("<script"));
    }

    #[test]
    fn page_script_never_parses_text_as_markup() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "Function(",
        ] {
            assert!(!SCRIPT.contains(sink), "{sink} in report.js");
        }
    }

    #[test]
    fn sha256_base64_of_known_text() {
        // The hash a CSP names for an empty script (`echo -n | sha256sum | xxd -r -p | base64`).
        assert_eq!(
            sha256_base64(""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
