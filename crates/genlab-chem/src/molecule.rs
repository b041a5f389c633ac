//! A SMILES string read into a molecular graph (OpenSMILES, <http://opensmiles.org/opensmiles.html>),
//! and the checks that make RDKit's `MolFromSmiles` accept or refuse it: the syntax (branches, ring
//! closures, bonds between atoms), aromatic atoms only in rings, a Kekulé structure for every
//! aromatic system (each aromatic atom that needs a double bond gets exactly one, by a perfect
//! matching over the aromatic bonds), and every atom's valence within what its element allows
//! (RDKit's valence lists, a charged atom taking those of its isoelectronic neutral element). Parity
//! with RDKit is measured on `fixtures/rdkit.json.gz`.

use thiserror::Error;

/// Why a SMILES string is not a molecule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MoleculeError {
    #[error(transparent)]
    Token(#[from] crate::smiles::SmilesError),
    #[error("SMILES {smiles:?}: {what} at token {at}")]
    Syntax { smiles: String, what: String, at: usize },
    #[error("SMILES {smiles:?}: unknown element {symbol:?}")]
    UnknownElement { smiles: String, symbol: String },
    #[error("SMILES {smiles:?}: ring bond {label} is opened but never closed")]
    UnclosedRing { smiles: String, label: u32 },
    #[error(
        "SMILES {smiles:?}: atom {atom} ({symbol}) has valence {valence}, more than {symbol} allows ({allowed:?})"
    )]
    Valence { smiles: String, atom: usize, symbol: String, valence: u32, allowed: Vec<u32> },
    #[error("SMILES {smiles:?}: atom {atom} is aromatic but not in a ring")]
    AromaticOutsideRing { smiles: String, atom: usize },
    #[error("SMILES {smiles:?}: the aromatic system of atom {atom} has no Kekulé structure")]
    Kekulize { smiles: String, atom: usize },
}

/// A bond's order as written (aromatic: lowercase atoms joined without a symbol, or `:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BondOrder {
    Single,
    Double,
    Triple,
    Quadruple,
    Aromatic,
}

impl BondOrder {
    /// The order as a number (an aromatic bond, not yet kekulised, as 1).
    pub fn valence_order(self) -> u32 {
        self.valence()
    }

    fn valence(self) -> u32 {
        match self {
            BondOrder::Single | BondOrder::Aromatic => 1,
            BondOrder::Double => 2,
            BondOrder::Triple => 3,
            BondOrder::Quadruple => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    /// Atomic number (0 for `*`).
    pub element: u8,
    pub aromatic: bool,
    /// Written in brackets: its hydrogens are the written ones, none implicit.
    pub bracket: bool,
    pub isotope: Option<u16>,
    pub charge: i8,
    /// Hydrogens written in a bracket atom (0 when none are written).
    pub hydrogens: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bond {
    pub a: usize,
    pub b: usize,
    pub order: BondOrder,
}

/// A molecule as its SMILES gives it, after the checks: Kekulé orders for the aromatic bonds in
/// `kekule`, the implicit hydrogens of organic-subset atoms in `implicit_h`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Molecule {
    pub atoms: Vec<Atom>,
    pub bonds: Vec<Bond>,
    pub kekule: Vec<BondOrder>,
    pub implicit_h: Vec<u8>,
}

const SYMBOLS: [&str; 55] = [
    "*", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca",
    "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",
    "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe",
];

/// The element's symbol.
pub fn symbol(element: u8) -> &'static str {
    SYMBOLS.get(element as usize).copied().unwrap_or("?")
}

fn element_of(symbol: &str) -> Option<u8> {
    SYMBOLS.iter().position(|s| *s == symbol).map(|z| z as u8)
}

/// The valences RDKit allows a neutral atom of element `z` (its periodic table's valence lists for
/// the main groups; an empty list: any valence).
fn neutral_valences(z: i32) -> Vec<u32> {
    match z {
        1 | 3 | 9 | 11 | 19 | 37 => vec![1],
        2 | 10 | 18 | 36 | 54 => vec![0],
        4 | 12 | 20 | 38 => vec![2],
        5 | 13 => vec![3],
        6 | 14 => vec![4],
        7 => vec![3],
        8 => vec![2],
        15 | 33 => vec![3, 5, 7],
        16 | 34 | 52 => vec![2, 4, 6],
        17 | 35 => vec![1],
        53 => vec![1, 3, 5],
        31 | 49 => vec![3],
        32 | 50 => vec![4],
        51 => vec![3, 5, 7],
        _ => vec![],
    }
}

/// The valences allowed to `atom`: those of the neutral element with as many electrons (a charge
/// of +1 on N gives C's, -1 on O gives F's), as RDKit's valence model does for the main groups.
fn allowed(atom: &Atom) -> Vec<u32> {
    let z = atom.element as i32;
    if z == 0 {
        return vec![];
    }
    let same = neutral_valences(z - atom.charge as i32);
    if atom.charge != 0 && same.is_empty() {
        return neutral_valences(z);
    }
    same
}

impl Molecule {
    /// The molecule of the atoms in `keep` and the bonds between them, organic-subset atoms'
    /// hydrogens recomputed for the bonds they keep (a bracket atom keeps its written ones).
    pub fn induced(&self, keep: &[bool]) -> Molecule {
        let mut index = vec![usize::MAX; self.atoms.len()];
        let mut atoms = Vec::new();
        for (i, a) in self.atoms.iter().enumerate().filter(|(i, _)| keep[*i]) {
            index[i] = atoms.len();
            atoms.push(a.clone());
        }
        let (mut bonds, mut kekule) = (Vec::new(), Vec::new());
        for (b, &o) in self.bonds.iter().zip(&self.kekule) {
            if keep[b.a] && keep[b.b] {
                bonds.push(Bond { a: index[b.a], b: index[b.b], order: b.order });
                kekule.push(o);
            }
        }
        let mut m = Molecule { atoms, bonds, kekule, implicit_h: vec![] };
        m.implicit_h =
            (0..m.atoms.len()).map(|v| if m.atoms[v].bracket { 0 } else { m.implicit_h_if_organic(v) as u8 }).collect();
        m
    }

    /// The hydrogens on atom `v`: written in its brackets, or implicit.
    pub fn hydrogens_on(&self, v: usize) -> u32 {
        u32::from(self.atoms[v].hydrogens) + u32::from(self.implicit_h.get(v).copied().unwrap_or(0))
    }

    /// The number of rings: the cycle rank (bonds - atoms + connected parts), the size of the
    /// smallest set of smallest rings (RDKit's `GetSSSR`; its `CalcNumRings` counts the
    /// symmetrised set, one more for some bridged systems).
    pub fn ring_count(&self) -> usize {
        let mut parent: Vec<usize> = (0..self.atoms.len()).collect();
        fn root(p: &mut [usize], mut v: usize) -> usize {
            while p[v] != v {
                p[v] = p[p[v]];
                v = p[v];
            }
            v
        }
        let mut parts = self.atoms.len();
        for b in &self.bonds {
            let (ra, rb) = (root(&mut parent, b.a), root(&mut parent, b.b));
            if ra != rb {
                parent[ra] = rb;
                parts -= 1;
            }
        }
        (self.bonds.len() + parts).saturating_sub(self.atoms.len())
    }

    /// The molecular weight as RDKit's `Descriptors.MolWt` gives it (average atomic weights of its
    /// periodic table, hydrogens included); None for an isotope label or an element outside the
    /// table (those of drug-like molecules).
    pub fn molecular_weight(&self) -> Option<f64> {
        let weight = |z: u8| -> Option<f64> {
            Some(match z {
                1 => 1.008,
                5 => 10.812,
                6 => 12.011,
                7 => 14.007,
                8 => 15.999,
                9 => 18.998,
                14 => 28.086,
                15 => 30.974,
                16 => 32.067,
                17 => 35.453,
                34 => 78.96,
                35 => 79.904,
                53 => 126.904,
                _ => return None,
            })
        };
        let mut total = 0.0;
        for (v, a) in self.atoms.iter().enumerate() {
            if a.isotope.is_some() {
                return None;
            }
            total += weight(a.element)? + f64::from(self.hydrogens_on(v)) * 1.008;
        }
        Some(total)
    }

    /// The hydrogens atom `v` would get as an organic-subset atom (no brackets) with its bonds: the
    /// next valence its element allows minus its bonds' (Kekulé orders).
    pub(crate) fn implicit_h_if_organic(&self, v: usize) -> u32 {
        let valence: u32 =
            self.bonds.iter().zip(&self.kekule).filter(|(b, _)| b.a == v || b.b == v).map(|(_, o)| o.valence()).sum();
        allowed(&self.atoms[v]).into_iter().find(|&t| t >= valence).map_or(0, |t| t - valence)
    }
}

/// Reads `smiles` into a checked molecule.
pub fn parse(smiles: &str) -> Result<Molecule, MoleculeError> {
    let tokens = crate::smiles::tokenize(smiles)?;
    let err = |what: &str, at: usize| MoleculeError::Syntax { smiles: smiles.into(), what: what.into(), at };
    let mut atoms: Vec<Atom> = Vec::new();
    let mut bonds: Vec<Bond> = Vec::new();
    let mut branches: Vec<usize> = Vec::new();
    let mut prev: Option<usize> = None;
    let mut pending: Option<BondOrder> = None;
    // Open ring bonds: label -> (atom, the bond order written at the opening).
    let mut rings: std::collections::BTreeMap<u32, (usize, Option<BondOrder>)> = Default::default();
    for (at, tok) in tokens.iter().enumerate() {
        let first = tok.as_bytes()[0];
        match first {
            b'(' => {
                if at > 0 && tokens[at - 1] == "(" {
                    return Err(err("a branch opened at the start of a branch", at));
                }
                let p = prev.ok_or_else(|| err("a branch before any atom", at))?;
                if pending.is_some() {
                    return Err(err("a bond before a branch", at));
                }
                branches.push(p);
            }
            b')' => {
                if pending.is_some() {
                    return Err(err("a bond with no atom after it", at));
                }
                if at > 0 && tokens[at - 1] == "(" {
                    return Err(err("an empty branch", at));
                }
                prev = Some(branches.pop().ok_or_else(|| err("`)` closes no branch", at))?);
            }
            b'.' => {
                if pending.is_some() || prev.is_none() || !branches.is_empty() {
                    return Err(err("`.` must separate two whole molecules", at));
                }
                prev = None;
            }
            b'-' | b'=' | b'#' | b'$' | b':' | b'/' | b'\\' => {
                if pending.is_some() || prev.is_none() {
                    return Err(err("a bond with no atom before it", at));
                }
                pending = Some(match first {
                    b'=' => BondOrder::Double,
                    b'#' => BondOrder::Triple,
                    b'$' => BondOrder::Quadruple,
                    b':' => BondOrder::Aromatic,
                    _ => BondOrder::Single,
                });
            }
            b'0'..=b'9' | b'%' => {
                let label: u32 = tok.trim_start_matches('%').parse().expect("ring labels are digits");
                // A ring bond follows its atom (perhaps after other ring bonds, a branch, and its
                // bond symbol), never the `(` that opens a branch.
                let before = tokens[..at]
                    .iter()
                    .rev()
                    .find(|t| !matches!(t.as_bytes()[0], b'-' | b'=' | b'#' | b'$' | b':' | b'/' | b'\\'));
                if before == Some(&"(") {
                    return Err(err("a ring bond at the start of a branch", at));
                }
                let here = prev.ok_or_else(|| err("a ring bond before any atom", at))?;
                match rings.remove(&label) {
                    None => {
                        rings.insert(label, (here, pending.take()));
                    }
                    Some((other, opened)) => {
                        if other == here {
                            return Err(err("a ring bond from an atom to itself", at));
                        }
                        if bonds.iter().any(|b| (b.a == other && b.b == here) || (b.a == here && b.b == other)) {
                            return Err(err("a ring bond between atoms already bonded", at));
                        }
                        let order = match (opened, pending.take()) {
                            (Some(a), Some(b)) if a != b && a != BondOrder::Single && b != BondOrder::Single => {
                                return Err(err("a ring bond with two different orders", at))
                            }
                            (Some(a), Some(b)) => Some(if a == BondOrder::Single { b } else { a }),
                            (a, b) => a.or(b),
                        };
                        let order = order.unwrap_or_else(|| default_order(&atoms[other], &atoms[here]));
                        bonds.push(Bond { a: other, b: here, order });
                    }
                }
            }
            _ => {
                let atom = read_atom(tok).ok_or_else(|| MoleculeError::UnknownElement {
                    smiles: smiles.into(),
                    symbol: tok.trim_matches(|c| c == '[' || c == ']').to_string(),
                })?;
                let i = atoms.len();
                atoms.push(atom);
                if let Some(p) = prev {
                    let order = pending.take().unwrap_or_else(|| default_order(&atoms[p], &atoms[i]));
                    bonds.push(Bond { a: p, b: i, order });
                }
                prev = Some(i);
            }
        }
    }
    if pending.is_some() {
        return Err(err("a bond with no atom after it", tokens.len()));
    }
    if tokens.last() == Some(&".") {
        return Err(err("`.` must separate two whole molecules", tokens.len() - 1));
    }
    if !branches.is_empty() {
        return Err(err("a branch `(` never closed", tokens.len()));
    }
    if let Some((&label, _)) = rings.iter().next() {
        return Err(MoleculeError::UnclosedRing { smiles: smiles.into(), label });
    }
    if atoms.is_empty() {
        return Err(err("no atoms", 0));
    }
    check(smiles, atoms, bonds)
}

fn default_order(a: &Atom, b: &Atom) -> BondOrder {
    if a.aromatic && b.aromatic {
        BondOrder::Aromatic
    } else {
        BondOrder::Single
    }
}

/// An atom token: an organic-subset symbol or a bracket atom `[isotope symbol chirality H count
/// charge :class]`.
fn read_atom(tok: &str) -> Option<Atom> {
    let organic = |sym: &str| -> Option<Atom> {
        let aromatic = sym.chars().next()?.is_ascii_lowercase();
        let upper = if aromatic { sym.to_ascii_uppercase() } else { sym.to_string() };
        Some(Atom { element: element_of(&upper)?, aromatic, bracket: false, isotope: None, charge: 0, hydrogens: 0 })
    };
    let Some(inner) = tok.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return if tok == "*" {
            Some(Atom { element: 0, aromatic: false, bracket: false, isotope: None, charge: 0, hydrogens: 0 })
        } else {
            organic(tok)
        };
    };
    let s = inner.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| -> Option<u32> {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        (*i > start).then(|| inner[start..*i].parse().ok()).flatten()
    };
    let isotope = digits(&mut i).map(|v| v as u16);
    // The element: `*`, an aromatic symbol (b c n o p s se as te), or a capital and an optional small letter.
    let rest = &inner[i..];
    let (element, aromatic, len) = if rest.starts_with('*') {
        (0, false, 1)
    } else if let Some(sym) = ["se", "as", "te", "b", "c", "n", "o", "p", "s"].iter().find(|a| rest.starts_with(**a)) {
        let upper = format!("{}{}", sym[..1].to_ascii_uppercase(), &sym[1..]);
        (element_of(&upper)?, true, sym.len())
    } else {
        let two = rest.get(..2).filter(|t| t.as_bytes()[1].is_ascii_lowercase()).and_then(element_of);
        match two {
            Some(z) => (z, false, 2),
            None => (element_of(rest.get(..1)?)?, false, 1),
        }
    };
    i += len;
    // Chirality: @, @@, or a class such as @TH1.
    while i < s.len() && s[i] == b'@' {
        i += 1;
    }
    if ["TH", "AL", "SP", "TB", "OH"].iter().any(|c| inner[i..].starts_with(c)) && inner[..i].ends_with('@') {
        i += 2;
        digits(&mut i)?;
    }
    let mut hydrogens = 0u8;
    if i < s.len() && s[i] == b'H' {
        i += 1;
        hydrogens = digits(&mut i).unwrap_or(1) as u8;
    }
    let mut charge: i32 = 0;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        let sign = if s[i] == b'+' { 1 } else { -1 };
        let c = s[i];
        i += 1;
        if let Some(n) = digits(&mut i) {
            charge = sign * n as i32;
        } else {
            charge = sign;
            while i < s.len() && s[i] == c {
                charge += sign;
                i += 1;
            }
        }
    }
    if i < s.len() && s[i] == b':' {
        i += 1;
        digits(&mut i)?;
    }
    if i != s.len() {
        return None;
    }
    Some(Atom { element, aromatic, bracket: true, isotope, charge: charge as i8, hydrogens })
}

/// Ring membership, the Kekulé structure and the valences.
fn check(smiles: &str, mut atoms: Vec<Atom>, bonds: Vec<Bond>) -> Result<Molecule, MoleculeError> {
    let n = atoms.len();
    let (adj, in_ring) = topology(n, &bonds);
    for (i, a) in atoms.iter().enumerate() {
        let ring_atom = adj[i].iter().any(|&(_, k)| in_ring[k]);
        if a.aromatic && !ring_atom {
            return Err(MoleculeError::AromaticOutsideRing { smiles: smiles.into(), atom: i });
        }
    }
    // An aromatic bond outside a ring is a single bond (RDKit clears the flag).
    let mut kekule: Vec<BondOrder> = bonds
        .iter()
        .enumerate()
        .map(|(k, b)| if b.order == BondOrder::Aromatic && !in_ring[k] { BondOrder::Single } else { b.order })
        .collect();
    // An aromatic atom left with no aromatic bond is an ordinary atom (RDKit keeps it, with
    // the hydrogens its valence leaves, even a bracket atom's).
    let aromatic_bonds = |i: usize, kekule: &[BondOrder]| adj[i].iter().any(|&(_, k)| kekule[k] == BondOrder::Aromatic);
    let demoted: Vec<bool> = (0..n).map(|i| atoms[i].aromatic && !aromatic_bonds(i, &kekule)).collect();
    // RDKit counts an aromatic bond as 1.5 before it kekulises: four of them exceed any valence
    // the aromatic elements allow (three, as at a ring fusion, are accepted).
    for i in 0..n {
        if adj[i].iter().filter(|&&(_, k)| kekule[k] == BondOrder::Aromatic).count() > 3 {
            let a = &atoms[i];
            return Err(MoleculeError::Valence {
                smiles: smiles.into(),
                atom: i,
                symbol: symbol(a.element).into(),
                valence: 6,
                allowed: allowed(a),
            });
        }
    }
    // Which aromatic atoms need one double bond among their aromatic bonds: those whose valence,
    // counting each aromatic bond once, is below the next valence their element allows.
    let needs: Vec<bool> = (0..n)
        .map(|i| {
            let a = &atoms[i];
            if !a.aromatic || demoted[i] {
                return false;
            }
            let sum: u32 = adj[i].iter().map(|&(_, k)| kekule[k].valence()).sum::<u32>() + a.hydrogens as u32;
            allowed(a).iter().find(|&&v| v >= sum).is_some_and(|&target| target > sum)
        })
        .collect();
    if let Some(atom) = kekulize(&atoms, &adj, &mut kekule, &needs) {
        return Err(MoleculeError::Kekulize { smiles: smiles.into(), atom });
    }
    // A demoted atom is written and compared as the ordinary atom it is; a neutral bracket one
    // takes the hydrogens its valence leaves, as RDKit gives it.
    for i in (0..n).filter(|&i| demoted[i]) {
        let a = &mut atoms[i];
        a.aromatic = false;
        if a.charge == 0 && a.isotope.is_none() {
            a.bracket = false;
            a.hydrogens = 0;
        }
    }
    let mut implicit_h = vec![0u8; n];
    for (i, a) in atoms.iter().enumerate() {
        let heavy: u32 = adj[i].iter().map(|&(_, k)| kekule[k].valence()).sum();
        let written_h = if demoted[i] { 0 } else { a.hydrogens as u32 };
        let valence = heavy + written_h;
        let list = allowed(a);
        if list.is_empty() {
            continue;
        }
        let max = *list.iter().max().expect("non-empty");
        if valence > max && !zwitterion(&atoms, &adj, &kekule, i, valence) {
            return Err(MoleculeError::Valence {
                smiles: smiles.into(),
                atom: i,
                symbol: symbol(a.element).into(),
                valence,
                allowed: list,
            });
        }
        if !a.bracket || demoted[i] {
            // A rewritten zwitterion (valence above the list) takes no hydrogens.
            let target = list.iter().copied().find(|&v| v >= valence).unwrap_or(valence);
            implicit_h[i] = (target - valence) as u8;
        }
    }
    Ok(Molecule { atoms, bonds, kekule, implicit_h })
}

/// The hypervalent forms RDKit's clean-up rewrites as charge-separated ones before it checks
/// valences: a neutral five-valent N with a double bond to O (N-oxides, nitro groups written
/// `N(=O)=O`) or a triple bond to N (azides), and a neutral Cl, Br or I bonded to O alone with
/// valence 3, 5 or 7 (perchlorate).
fn zwitterion(atoms: &[Atom], adj: &[Vec<(usize, usize)>], kekule: &[BondOrder], i: usize, valence: u32) -> bool {
    let a = &atoms[i];
    if a.charge != 0 || a.aromatic || a.hydrogens > 0 {
        return false;
    }
    match a.element {
        7 => {
            valence == 5
                && adj[i].iter().any(|&(w, k)| {
                    (kekule[k] == BondOrder::Double && atoms[w].element == 8)
                        || (kekule[k] == BondOrder::Triple && atoms[w].element == 7)
                })
        }
        17 | 35 | 53 => matches!(valence, 3 | 5 | 7) && adj[i].iter().all(|&(w, _)| atoms[w].element == 8),
        _ => false,
    }
}

/// Each atom's (neighbour, bond) pairs and which bonds lie on a cycle: what every graph
/// algorithm here starts from.
pub(crate) fn topology(n: usize, bonds: &[Bond]) -> (Vec<Vec<(usize, usize)>>, Vec<bool>) {
    let mut adj: Vec<Vec<(usize, usize)>> = vec![vec![]; n];
    for (k, b) in bonds.iter().enumerate() {
        adj[b.a].push((b.b, k));
        adj[b.b].push((b.a, k));
    }
    let ring = ring_bonds(n, &adj, bonds.len());
    (adj, ring)
}

/// Which bonds lie on a cycle (not bridges), by Tarjan's low-link search.
fn ring_bonds(n: usize, adj: &[Vec<(usize, usize)>], m: usize) -> Vec<bool> {
    let mut in_ring = vec![true; m];
    let mut order = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut counter = 0;
    for root in 0..n {
        if order[root] != usize::MAX {
            continue;
        }
        // Iterative DFS: (atom, the bond it was reached by, next neighbour index).
        let mut stack: Vec<(usize, usize, usize)> = vec![(root, usize::MAX, 0)];
        order[root] = counter;
        low[root] = counter;
        counter += 1;
        while let Some(&mut (v, via, ref mut next)) = stack.last_mut() {
            if *next < adj[v].len() {
                let (w, k) = adj[v][*next];
                *next += 1;
                if k == via {
                    continue;
                }
                if order[w] == usize::MAX {
                    order[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push((w, k, 0));
                } else {
                    low[v] = low[v].min(order[w]);
                }
            } else {
                stack.pop();
                if let Some(&(u, _, _)) = stack.last() {
                    low[u] = low[u].min(low[v]);
                    if low[v] > order[u] {
                        in_ring[via] = false;
                    }
                }
            }
        }
    }
    in_ring
}

/// Sets one double bond at each atom of `needs` along the aromatic bonds and the others single (a
/// perfect matching of the atoms that need one, by backtracking from the most constrained atom);
/// returns an atom of a system that has none.
fn kekulize(atoms: &[Atom], adj: &[Vec<(usize, usize)>], kekule: &mut [BondOrder], needs: &[bool]) -> Option<usize> {
    let n = atoms.len();
    let mut mate = vec![usize::MAX; n];
    fn candidates(
        v: usize,
        adj: &[Vec<(usize, usize)>],
        kekule: &[BondOrder],
        needs: &[bool],
        mate: &[usize],
    ) -> Vec<(usize, usize)> {
        adj[v]
            .iter()
            .copied()
            .filter(|&(w, k)| kekule[k] == BondOrder::Aromatic && needs[w] && mate[w] == usize::MAX)
            .collect()
    }
    fn solve(
        adj: &[Vec<(usize, usize)>],
        kekule: &[BondOrder],
        needs: &[bool],
        mate: &mut Vec<usize>,
        budget: &mut u32,
    ) -> bool {
        // The unmatched atom with the fewest free partners.
        let mut best: Option<(usize, Vec<(usize, usize)>)> = None;
        for v in 0..needs.len() {
            if needs[v] && mate[v] == usize::MAX {
                let c = candidates(v, adj, kekule, needs, mate);
                if best.as_ref().is_none_or(|(_, b)| c.len() < b.len()) {
                    let empty = c.is_empty();
                    best = Some((v, c));
                    if empty {
                        break;
                    }
                }
            }
        }
        let Some((v, options)) = best else { return true };
        for (w, _) in options {
            if *budget == 0 {
                return false;
            }
            *budget -= 1;
            mate[v] = w;
            mate[w] = v;
            if solve(adj, kekule, needs, mate, budget) {
                return true;
            }
            mate[v] = usize::MAX;
            mate[w] = usize::MAX;
        }
        false
    }
    let mut budget = 100_000;
    if !solve(adj, kekule, needs, &mut mate, &mut budget) {
        return (0..n).find(|&v| needs[v] && mate[v] == usize::MAX).or(Some(0));
    }
    for v in 0..n {
        for &(w, k) in &adj[v] {
            if kekule[k] == BondOrder::Aromatic {
                kekule[k] = if mate[v] == w { BondOrder::Double } else { BondOrder::Single };
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
