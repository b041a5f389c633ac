//! genlab-chem: the chemistry that molecule generation needs, with no dependency on the rest of
//! genlab. So far: SMILES tokenisation ([`smiles`]). Issue 20 adds the parser with valence and
//! aromaticity checks, canonical SMILES, Morgan fingerprints, Bemis-Murcko scaffolds and SELFIES,
//! each checked against RDKit fixtures (`fixtures/`).

pub mod aromaticity;
pub mod brics;
pub mod canonical;
pub mod fingerprint;
pub mod molecule;
pub mod moses;
pub mod scaffold;
pub mod selfies;
pub mod smiles;

pub use canonical::canonical_smiles;
pub use molecule::{parse, Molecule, MoleculeError};
pub use smiles::{tokenize, SmilesError};

/// The RDKit fixture (`fixtures/rdkit.json.gz`, made by `fixtures/make_rdkit_fixture.py`) the
/// modules' tests compare against.
#[cfg(test)]
pub(crate) fn rdkit_fixture() -> serde_json::Value {
    use std::io::Read;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/rdkit.json.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("the committed fixture"))
        .read_to_string(&mut text)
        .expect("gzip JSON");
    serde_json::from_str(&text).expect("JSON")
}
