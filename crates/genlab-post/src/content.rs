//! Content filters for generated text: a blocklist matched on word boundaries (case-insensitive),
//! and redaction of personal data that a model may have picked up or made up: e-mail addresses,
//! URLs and phone numbers, each replaced by a tag (`[email]`, `[url]`, `[phone]`) and counted.
//!
//! The patterns follow what redaction tools such as Microsoft Presidio recognise: an address is
//! `local@domain.tld`; a URL has a scheme (`http://`, `https://`, `ftp://`) or starts with `www.`;
//! a phone number is 7 to 15 digits in groups separated by spaces, dots or dashes, with an optional
//! `+` country code and brackets around an area code (E.164 allows at most 15 digits). Bare years
//! and short numbers are left alone: a run of digits counts only with 7 digits or more.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// What the blocklist does with a text that contains a listed word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockAction {
    /// The word is replaced by `[blocked]`.
    #[default]
    Mask,
    /// The whole text is withheld (and counted).
    Withhold,
}

/// Counts of what the filters changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterCounts {
    pub corrected_words: u64,
    pub blocked_words: u64,
    pub withheld: u64,
    /// Texts withheld for repeating the training text verbatim.
    pub copied: u64,
    /// Generated images withheld (and drawn again) for being too close to a training image.
    pub memorised_images: u64,
    pub emails: u64,
    pub urls: u64,
    pub phones: u64,
}

impl FilterCounts {
    /// Each count with its name (the server's metric labels).
    pub fn fields(&self) -> [(&'static str, u64); 8] {
        [
            ("corrected_words", self.corrected_words),
            ("blocked_words", self.blocked_words),
            ("withheld_texts", self.withheld),
            ("copied_texts", self.copied),
            ("memorised_images", self.memorised_images),
            ("emails", self.emails),
            ("urls", self.urls),
            ("phones", self.phones),
        ]
    }

    pub fn add(&mut self, other: &FilterCounts) {
        self.corrected_words += other.corrected_words;
        self.blocked_words += other.blocked_words;
        self.withheld += other.withheld;
        self.copied += other.copied;
        self.memorised_images += other.memorised_images;
        self.emails += other.emails;
        self.urls += other.urls;
        self.phones += other.phones;
    }
}

/// Listed words or phrases, matched whole (`ass` does not match `pass`), case-insensitive.
#[derive(Debug, Clone)]
pub struct Blocklist {
    pattern: Option<Regex>,
    action: BlockAction,
}

impl Blocklist {
    pub fn new(words: &[String], action: BlockAction) -> Blocklist {
        let listed: Vec<String> = words.iter().map(|w| w.trim()).filter(|w| !w.is_empty()).map(regex::escape).collect();
        let pattern = (!listed.is_empty()).then(|| {
            // Longest first, so a phrase wins over a word it starts with.
            let mut listed = listed;
            listed.sort_by_key(|w| std::cmp::Reverse(w.len()));
            Regex::new(&format!(r"(?i)\b(?:{})\b", listed.join("|")))
                .expect("escaped words should make a valid pattern")
        });
        Blocklist { pattern, action }
    }

    /// The text after the blocklist, or `None` when it is withheld.
    pub fn apply(&self, text: &str, counts: &mut FilterCounts) -> Option<String> {
        let Some(pattern) = &self.pattern else { return Some(text.to_string()) };
        let hits = pattern.find_iter(text).count() as u64;
        if hits == 0 {
            return Some(text.to_string());
        }
        counts.blocked_words += hits;
        match self.action {
            BlockAction::Mask => Some(pattern.replace_all(text, "[blocked]").into_owned()),
            BlockAction::Withhold => {
                counts.withheld += 1;
                None
            }
        }
    }
}

/// Redaction of e-mail addresses, URLs and phone numbers.
#[derive(Debug, Clone)]
pub struct PiiRedactor {
    email: Regex,
    url: Regex,
    phone: Regex,
}

impl Default for PiiRedactor {
    fn default() -> Self {
        PiiRedactor::new()
    }
}

impl PiiRedactor {
    pub fn new() -> PiiRedactor {
        let email =
            Regex::new(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b").expect("valid pattern");
        let url =
            Regex::new(r#"(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>"']+[^\s<>"'.,;:!?)\]]"#).expect("valid pattern");
        let phone = Regex::new(r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,4}){1,4}")
            .expect("valid pattern");
        PiiRedactor { email, url, phone }
    }

    /// The text with each address, URL and phone number replaced by its tag, counted.
    pub fn redact(&self, text: &str, counts: &mut FilterCounts) -> String {
        // Addresses and URLs first: their digits must not be read as phone numbers.
        let text = self.email.replace_all(text, |_: &regex::Captures| {
            counts.emails += 1;
            "[email]"
        });
        let text = self.url.replace_all(&text, |_: &regex::Captures| {
            counts.urls += 1;
            "[url]"
        });
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in self.phone.find_iter(&text) {
            let digits = m.as_str().chars().filter(char::is_ascii_digit).count();
            let bytes = text.as_bytes();
            // Not inside a longer token: no letter or digit touching either end.
            let touching = |i: Option<&u8>| i.is_some_and(|b| b.is_ascii_alphanumeric());
            let inside = touching(m.start().checked_sub(1).and_then(|i| bytes.get(i))) || touching(bytes.get(m.end()));
            if (7..=15).contains(&digits) && !inside {
                out.push_str(&text[last..m.start()]);
                out.push_str("[phone]");
                counts.phones += 1;
                last = m.end();
            }
        }
        out.push_str(&text[last..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocklist_matches_whole_words_in_any_case() {
        let list = Blocklist::new(&["ass".into(), "bloody villain".into(), " ".into()], BlockAction::Mask);
        let mut counts = FilterCounts::default();
        let out = list.apply("Pass the Ass, thou BLOODY villain; assess it.", &mut counts).unwrap();
        assert_eq!(out, "Pass the [blocked], thou [blocked]; assess it.");
        assert_eq!(counts.blocked_words, 2);
        let withhold = Blocklist::new(&["ass".into()], BlockAction::Withhold);
        assert_eq!(withhold.apply("an ass", &mut counts), None);
        assert_eq!(withhold.apply("a pass", &mut counts).as_deref(), Some("a pass"));
        assert_eq!(counts.withheld, 1);
        let empty = Blocklist::new(&[], BlockAction::Withhold);
        assert_eq!(empty.apply("anything", &mut counts).as_deref(), Some("anything"));
    }

    #[test]
    fn redaction_tags_and_counts_each_kind() {
        let pii = PiiRedactor::new();
        let mut counts = FilterCounts::default();
        let text = "Write to romeo.montague@verona.example.org or see https://verona.example/balcony?act=2, \
                    www.globe.example. Call +44 20 7946 0958, (555) 123-4567 or 555.867.5309 now.";
        let out = pii.redact(text, &mut counts);
        assert_eq!(out, "Write to [email] or see [url], [url]. Call [phone], [phone] or [phone] now.");
        assert_eq!(counts, FilterCounts { emails: 1, urls: 2, phones: 3, ..Default::default() });
    }

    #[test]
    fn numbers_that_are_not_phone_numbers_stay() {
        let pii = PiiRedactor::new();
        let mut counts = FilterCounts::default();
        let text = "In 1599 the Globe held 3000 souls; act 2 scene 3; ISBN9780140714548x; 12 34.";
        assert_eq!(pii.redact(text, &mut counts), text);
        assert_eq!(counts, FilterCounts::default());
    }
}
