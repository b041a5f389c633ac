use super::*;
use crate::canonical::canonical_smiles;
use crate::molecule::parse;

fn canon(s: &str) -> String {
    canonical_smiles(&parse(s).unwrap_or_else(|e| panic!("{e}")))
}

/// The `selfies` package's encodings of 1,000 MOSES molecules decode to the molecules it decodes
/// them to (RDKit's canonical SMILES of its output, compared by canonical form).
#[test]
fn decodes_the_package_s_strings_as_it_does() {
    let fx = crate::rdkit_fixture();
    let mut wrong = Vec::new();
    for c in fx["selfies"].as_array().unwrap() {
        let sf = c["selfies"].as_str().unwrap();
        let got = canonical_smiles(&decode(sf).unwrap());
        let want = canon(c["decoded_canonical"].as_str().unwrap());
        if got != want {
            wrong.push(format!("{sf}: {got} vs {want}"));
        }
    }
    assert!(wrong.is_empty(), "{} of 1000 differ: {:#?}", wrong.len(), &wrong[..wrong.len().min(5)]);
}

/// genlab's own encodings decode back to the molecule (issue 20, acceptance 3, here on the
/// fixture's 1,000; the vendored test split is checked in genlab-data).
#[test]
fn encode_then_decode_is_the_molecule() {
    let fx = crate::rdkit_fixture();
    for c in fx["selfies"].as_array().unwrap() {
        let s = c["smiles"].as_str().unwrap();
        let sf = encode(s).unwrap();
        assert_eq!(canonical_smiles(&decode(&sf).unwrap()), canon(s), "{s} -> {sf}");
    }
}

/// Any string of SELFIES symbols decodes to a molecule RDKit's rules accept (or to nothing): 2,000
/// random strings of 1 to 40 symbols from the alphabet, written out and read back by the SMILES
/// parser.
#[test]
fn random_symbol_strings_decode_to_valid_molecules() {
    let alphabet = [
        "[C]",
        "[=C]",
        "[#C]",
        "[N]",
        "[=N]",
        "[#N]",
        "[O]",
        "[=O]",
        "[S]",
        "[=S]",
        "[F]",
        "[Cl]",
        "[Br]",
        "[P]",
        "[NH1+1]",
        "[O-1]",
        "[Ring1]",
        "[=Ring1]",
        "[Ring2]",
        "[Branch1]",
        "[=Branch1]",
        "[#Branch1]",
        "[Branch2]",
    ];
    let mut state = 12345u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let len = 1 + (next() % 40) as usize;
        let sf: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
        // Strings whose symbols derive no atom (`[Ring1]` alone) decode to nothing, as the
        // package's give "".
        let m = match decode(&sf) {
            Err(SelfiesError::Empty { .. }) => continue,
            other => other.unwrap(),
        };
        let written = canonical_smiles(&m);
        parse(&written).unwrap_or_else(|e| panic!("{sf} -> {written}: {e}"));
    }
}

#[test]
fn hand_cases() {
    assert_eq!(canonical_smiles(&decode("[C][C][O]").unwrap()), canon("CCO"));
    assert_eq!(canonical_smiles(&decode("[C][=C][C][=C][C][=C][Ring1][=Branch1]").unwrap()), canon("c1ccccc1"));
    assert_eq!(canonical_smiles(&decode("[C][Branch1][C][F][O]").unwrap()), canon("C(F)O"));
    // Bonds beyond an atom's capacity are cut: a fourth bond to O becomes none.
    assert_eq!(canonical_smiles(&decode("[O][=C][=O]").unwrap()), canon("O=C=O"));
    assert_eq!(canonical_smiles(&decode("[F][=O]").unwrap()), canon("FO"));
    assert!(decode("[C][Xx]").is_err());
    assert_eq!(encode("CCO").unwrap(), "[C][C][O]");
}
