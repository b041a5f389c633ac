//! Whitespace and punctuation normalisation of generated text, line by line: runs of spaces and
//! tabs become one space, lines lose their leading and trailing blanks, no space stands before
//! `, . ; : ! ? ) ]` or after `( [`, a mark repeated more than three times (`!!!!!`) is cut to
//! three, and more than one empty line in a row becomes one. Newlines are kept: a generated play
//! keeps its speeches.

/// The text normalised (see the module comment).
pub fn normalize(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = normalize_line(line);
        if line.is_empty() && lines.last().is_some_and(|l| l.is_empty()) {
            continue;
        }
        lines.push(line);
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') && !out.is_empty() {
        out.push('\n');
    }
    out
}

fn normalize_line(line: &str) -> String {
    let mut out: Vec<char> = Vec::with_capacity(line.len());
    for c in line.trim().chars() {
        let c = if c == '\t' { ' ' } else { c };
        let last = out.last().copied();
        if c == ' ' && matches!(last, Some(' ') | Some('(') | Some('[')) {
            continue;
        }
        if matches!(c, ',' | '.' | ';' | ':' | '!' | '?' | ')' | ']') && last == Some(' ') {
            out.pop();
        }
        if c.is_ascii_punctuation() && out.len() >= 3 && out[out.len() - 3..].iter().all(|&p| p == c) {
            continue;
        }
        out.push(c);
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_lines() {
        assert_eq!(normalize("  ROMEO :\tI  will ,  I will !!!!!! "), "ROMEO: I will, I will!!!");
        assert_eq!(normalize("( aside ) What , ho ?"), "(aside) What, ho?");
        assert_eq!(normalize("a\n\n\n\nb\n"), "a\n\nb\n");
        assert_eq!(normalize("Exeunt..."), "Exeunt...");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for text in ["  ROMEO :\tI  will ,  I will !!!!!! ", "x ,, y . . z", "\n\n a \n\n\n b"] {
            let once = normalize(text);
            assert_eq!(normalize(&once), once, "{text:?}");
        }
    }
}
