//! The atom-level SMILES tokeniser of the molecular-transformer literature (Schwaller et al. 2019,
//! "Molecular Transformer", <https://doi.org/10.1021/acscentsci.9b00576>): a bracket atom
//! (`[nH]`, `[C@@H]`, `[N+]`, `[13CH3]`) is one token, as are the two-letter organic-subset
//! elements `Br` and `Cl`, a two-digit ring closure `%12`, and every other character (one-letter
//! atoms `B C N O P S F I b c n o s p`, bonds `- = # $ : / \ ~`, branches `( )`, ring digits, `.`,
//! `*`, reaction arrows `>`, `?`, `+`, `@`).
//!
//! It accepts exactly the characters the reference regular expression matches, but where that
//! expression (applied with `re.findall`) silently drops any other character, this one refuses the
//! string and names the character and its position; so the tokens of an accepted string always
//! concatenate back to it.

use thiserror::Error;

/// Why a string is not tokenised.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SmilesError {
    #[error("SMILES {smiles:?}: character {found:?} at position {at} is not a SMILES token (an atom outside brackets must be one of B C N O P S F Cl Br I b c n o s p or *)")]
    UnknownCharacter { smiles: String, found: char, at: usize },
    #[error("SMILES {smiles:?}: the bracket atom opened at position {at} is not closed")]
    UnclosedBracket { smiles: String, at: usize },
    #[error("SMILES {smiles:?}: `%` at position {at} must be followed by two digits (a ring closure %10 to %99)")]
    BadRingClosure { smiles: String, at: usize },
    #[error("empty SMILES")]
    Empty,
}

/// The single characters that are tokens by themselves outside brackets.
fn single(c: char) -> bool {
    matches!(
        c,
        'B' | 'C'
            | 'N'
            | 'O'
            | 'S'
            | 'P'
            | 'F'
            | 'I'
            | 'b'
            | 'c'
            | 'n'
            | 'o'
            | 's'
            | 'p'
            | '('
            | ')'
            | '.'
            | '='
            | '#'
            | '-'
            | '+'
            | '\\'
            | '/'
            | ':'
            | '~'
            | '@'
            | '?'
            | '>'
            | '*'
            | '$'
    ) || c.is_ascii_digit()
}

/// The tokens of `smiles`, slices of it in order.
///
/// ```
/// assert_eq!(genlab_chem::tokenize("C[C@@H](Cl)c1ccc%10n1").unwrap(),
///            ["C", "[C@@H]", "(", "Cl", ")", "c", "1", "c", "c", "c", "%10", "n", "1"]);
/// ```
pub fn tokenize(smiles: &str) -> Result<Vec<&str>, SmilesError> {
    if smiles.is_empty() {
        return Err(SmilesError::Empty);
    }
    let bytes = smiles.as_bytes();
    let mut tokens = Vec::with_capacity(smiles.len());
    let mut i = 0;
    while i < bytes.len() {
        let len = match bytes[i] {
            b'[' => match bytes[i + 1..].iter().position(|&b| b == b']') {
                // The reference expression asks for at least one character inside: `[]` is no token.
                Some(close) if close > 0 => close + 2,
                _ => return Err(SmilesError::UnclosedBracket { smiles: smiles.into(), at: i }),
            },
            b'B' if bytes.get(i + 1) == Some(&b'r') => 2,
            b'C' if bytes.get(i + 1) == Some(&b'l') => 2,
            b'%' => {
                if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) && bytes.get(i + 2).is_some_and(u8::is_ascii_digit)
                {
                    3
                } else {
                    return Err(SmilesError::BadRingClosure { smiles: smiles.into(), at: i });
                }
            }
            _ => {
                let c = smiles[i..].chars().next().expect("i is a character boundary below the end");
                if !single(c) {
                    return Err(SmilesError::UnknownCharacter { smiles: smiles.into(), found: c, at: i });
                }
                1
            }
        };
        tokens.push(&smiles[i..i + len]);
        i += len;
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracket_atoms_two_letter_elements_and_ring_closures_are_one_token() {
        let cases: [(&str, &[&str]); 5] = [
            ("CCO", &["C", "C", "O"]),
            ("BrCCl", &["Br", "C", "Cl"]),
            ("O=[N+]([O-])c1ccc[nH]1", &["O", "=", "[N+]", "(", "[O-]", ")", "c", "1", "c", "c", "c", "[nH]", "1"]),
            ("C%12CC%12.[Na+]", &["C", "%12", "C", "C", "%12", ".", "[Na+]"]),
            ("F/C=C\\[13CH3]", &["F", "/", "C", "=", "C", "\\", "[13CH3]"]),
        ];
        for (s, want) in cases {
            assert_eq!(tokenize(s).unwrap(), want, "{s}");
        }
        // Outside brackets "Sc" is sulphur then an aromatic carbon, "Bb" boron then aromatic boron.
        assert_eq!(tokenize("Sc1ccsc1").unwrap()[..2], ["S", "c"]);
    }

    #[test]
    fn what_the_reference_expression_would_drop_is_refused() {
        assert_eq!(tokenize("CCXC"), Err(SmilesError::UnknownCharacter { smiles: "CCXC".into(), found: 'X', at: 2 }));
        assert_eq!(tokenize("CC[NH"), Err(SmilesError::UnclosedBracket { smiles: "CC[NH".into(), at: 2 }));
        assert_eq!(tokenize("C[]C"), Err(SmilesError::UnclosedBracket { smiles: "C[]C".into(), at: 1 }));
        assert_eq!(tokenize("C%1CC%1"), Err(SmilesError::BadRingClosure { smiles: "C%1CC%1".into(), at: 1 }));
        assert_eq!(tokenize(""), Err(SmilesError::Empty));
        assert!(tokenize("C C").is_err() && tokenize("CCé").is_err());
        let e = tokenize("CCXC").unwrap_err().to_string();
        assert!(e.contains("'X' at position 2"), "{e}");
    }
}
