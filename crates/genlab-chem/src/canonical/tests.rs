use super::*;
use crate::molecule::parse;
use std::collections::HashMap;

fn canon(s: &str) -> String {
    canonical_smiles(&parse(s).unwrap_or_else(|e| panic!("{e}")))
}

/// 1,000 molecules each written 4 ways (RDKit's canonical SMILES and 3 renumberings): genlab's
/// canonical form is one string per molecule and a different string for each different molecule,
/// the uniqueness and novelty decisions of RDKit's canonical SMILES (issue 20, acceptance 1). The
/// canonical string reads back to itself.
#[test]
fn canonical_forms_decide_as_rdkit_does() {
    let fx = crate::rdkit_fixture();
    let groups = fx["rewritten"].as_array().unwrap();
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut split = Vec::new();
    for g in groups {
        let rdkit = g["canonical"].as_str().unwrap().to_string();
        let mine = canon(&rdkit);
        assert_eq!(canon(&mine), mine, "{rdkit}: the canonical string {mine} does not read back to itself");
        for f in g["forms"].as_array().unwrap() {
            let other = canon(f.as_str().unwrap());
            if other != mine {
                split.push(format!("{rdkit}: {mine} but {f} -> {other}"));
            }
        }
        if let Some(prev) = owner.insert(mine.clone(), rdkit.clone()) {
            assert_eq!(prev, rdkit, "two molecules share the canonical form {mine}");
        }
    }
    assert!(
        split.is_empty(),
        "{} of 3,000 rewritings get another form: {:#?}",
        split.len(),
        &split[..split.len().min(10)]
    );
}

/// On the validity fixture's valid strings: genlab's canonical forms group them exactly as RDKit's
/// canonical SMILES do (MOSES molecules and edited copies, some of which are the same molecule).
#[test]
fn canonical_groups_match_rdkit_on_the_validity_strings() {
    let fx = crate::rdkit_fixture();
    let mut by_rdkit: HashMap<String, String> = HashMap::new();
    let mut by_mine: HashMap<String, String> = HashMap::new();
    let mut count = 0;
    for set in ["validity", "validity_heldout"] {
        for c in fx[set].as_array().unwrap() {
            let Some(rdkit) = c["canonical"].as_str() else { continue };
            let mine = canon(c["smiles"].as_str().unwrap());
            count += 1;
            if let Some(prev) = by_rdkit.insert(rdkit.to_string(), mine.clone()) {
                assert_eq!(prev, mine, "RDKit's {rdkit} got two genlab forms");
            }
            if let Some(prev) = by_mine.insert(mine.clone(), rdkit.to_string()) {
                assert_eq!(prev, rdkit, "genlab's {mine} holds two RDKit molecules");
            }
        }
    }
    assert!(count > 15_000, "{count}");
}

#[test]
fn hand_cases() {
    assert_eq!(canon("OCC"), canon("CCO"));
    assert_eq!(canon("c1ccccc1O"), canon("Oc1ccccc1"));
    assert_ne!(canon("CCO"), canon("COC"));
    assert_eq!(canon("C1CC1C"), canon("CC1CC1"));
    assert_eq!(canon("[CH3]C"), "CC");
    assert_eq!(canon("c1cc[nH]c1"), canon("[nH]1cccc1"));
    assert_eq!(canon("C.O"), canon("O.C"));
}

#[test]
fn kekule_and_aromatic_forms_are_one_molecule() {
    assert_eq!(canon("C1=CC=CC=C1O"), canon("Oc1ccccc1"));
    assert_eq!(canon("c1-ccccc1"), canon("c1ccccc1"));
    assert_eq!(canon("C1=CNC=C1"), canon("c1cc[nH]c1"));
    assert_eq!(canon("O=C1C=CC=CN1"), canon("O=c1cccc[nH]1"));
    assert_eq!(canon("C1=CCC=C1"), canon("C1=CC=CC1"));
    assert_ne!(canon("C1=CCC=C1"), canon("C1=CCCC1"));
}
