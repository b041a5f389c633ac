//! genlab-chem: the chemistry that molecule generation needs, with no dependency on the rest of
//! genlab. So far: SMILES tokenisation ([`smiles`]). Issue 20 adds the parser with valence and
//! aromaticity checks, canonical SMILES, Morgan fingerprints, Bemis-Murcko scaffolds and SELFIES,
//! each checked against RDKit fixtures (`fixtures/`).

pub mod aromaticity;
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
