//! BRICS fragments (Degen et al. 2008, <https://doi.org/10.1002/cmdc.200800178>) as RDKit's
//! `FragmentOnBRICSBonds` takes them, for MOSES's fragment similarity (Frag): the acyclic bonds
//! between two atoms in compatible chemical environments are cut, and each cut end gets a dummy
//! atom labelled (as its isotope) with its own atom's environment number, `[3*]O[3*]`.
//!
//! RDKit defines the sixteen environments as SMARTS (`rdkit/Chem/BRICS.py`); here each is the same
//! test written on the graph: element and aromaticity (`C` aliphatic carbon, `c` aromatic, `#6`
//! either), the degree D (explicit neighbours), ring membership, and the bond kinds (`-` single,
//! `=` double, `:` aromatic, `@` in a ring; unwritten: single or aromatic). Aromaticity is the
//! SMILES's, as the Morgan fingerprints read it (MOSES's strings are RDKit's own, so the two agree;
//! genlab's ring-by-ring perception misses the fused systems RDKit finds aromatic only as a whole,
//! such as pyrazolo[1,5-a]pyrimidines). As RDKit's `fragmentOnBonds` does, the rules are tried
//! from the last (the most specific) to the first, and a bond is claimed by the first that matches
//! it; a cut double bond leaves double bonds to its dummies. Parity with RDKit:
//! `fixtures/brics.json`.

use crate::canonical::canonical_smiles;
use crate::molecule::{Atom, Bond, BondOrder, Molecule};
use std::collections::HashMap;

/// The graph as the environments read it.
struct View<'a> {
    mol: &'a Molecule,
    aromatic: Vec<bool>,
    orders: Vec<BondOrder>,
    adj: Vec<Vec<(usize, usize)>>,
    ring_bond: Vec<bool>,
    in_ring: Vec<bool>,
}

/// SMARTS atom primitives.
#[derive(Clone, Copy)]
enum El {
    /// `C`, `N`, `O`, `S`: aliphatic.
    Aliphatic(u8),
    /// `c`, `n`, `o`, `s`: aromatic.
    Aromatic(u8),
    /// `#n`: either.
    Any(u8),
}

impl<'a> View<'a> {
    fn new(mol: &'a Molecule) -> Self {
        let (adj, ring_bond) = crate::molecule::topology(mol.atoms.len(), &mol.bonds);
        let aromatic = mol.atoms.iter().map(|a| a.aromatic).collect();
        // Aromatic bonds outside rings were read as single bonds; the others keep the written order.
        let orders = mol
            .bonds
            .iter()
            .enumerate()
            .map(|(k, b)| if b.order == BondOrder::Aromatic && !ring_bond[k] { BondOrder::Single } else { b.order })
            .collect();
        let in_ring = (0..mol.atoms.len()).map(|i| adj[i].iter().any(|&(_, k)| ring_bond[k])).collect();
        View { mol, aromatic, orders, adj, ring_bond, in_ring }
    }

    fn is(&self, v: usize, e: El) -> bool {
        let z = self.mol.atoms[v].element;
        match e {
            El::Aliphatic(x) => z == x && !self.aromatic[v],
            El::Aromatic(x) => z == x && self.aromatic[v],
            El::Any(x) => z == x,
        }
    }

    fn any(&self, v: usize, es: &[El]) -> bool {
        es.iter().any(|&e| self.is(v, e))
    }

    fn degree(&self, v: usize) -> usize {
        self.adj[v].len()
    }

    fn single(&self, k: usize) -> bool {
        self.orders[k] == BondOrder::Single
    }

    fn double(&self, k: usize) -> bool {
        self.orders[k] == BondOrder::Double
    }

    fn aromatic_bond(&self, k: usize) -> bool {
        self.orders[k] == BondOrder::Aromatic
    }

    /// An unwritten SMARTS bond: single or aromatic.
    fn plain(&self, k: usize) -> bool {
        self.single(k) || self.aromatic_bond(k)
    }

    /// Neighbours `(w, bond)` of `v` through bonds that pass `bond`, that are `es`.
    fn neighbours<'s>(
        &'s self,
        v: usize,
        bond: impl Fn(usize) -> bool + 's,
        es: &'s [El],
    ) -> impl Iterator<Item = usize> + 's {
        self.adj[v].iter().filter(move |&&(w, k)| bond(k) && self.any(w, es)).map(|&(w, _)| w)
    }

    /// Two distinct neighbours, one in each set (`v(bond a)(bond b)` in SMARTS).
    fn two(&self, v: usize, a: (&dyn Fn(usize) -> bool, &[El]), b: (&dyn Fn(usize) -> bool, &[El])) -> bool {
        self.neighbours(v, a.0, a.1).any(|x| self.neighbours(v, b.0, b.1).any(|y| y != x))
    }

    /// Whether atom `v` is in environment `env` (`L1` .. `L16`; `7a`/`7b`, `14b`, `16b` as 7, 14, 16).
    fn environment(&self, v: usize, env: u8) -> bool {
        use El::*;
        let (c, n, o, s) = (Aliphatic(6), Aliphatic(7), Aliphatic(8), Aliphatic(16));
        let a = self.mol.atoms[v].charge;
        let d = self.degree(v);
        let ring = |k: usize| self.ring_bond[k];
        let chain_single = |k: usize| self.single(k) && !self.ring_bond[k];
        let ring_single = |k: usize| self.single(k) && self.ring_bond[k];
        let has_double = || self.adj[v].iter().any(|&(_, k)| self.double(k));
        let aro = |k: usize| self.aromatic_bond(k);
        let arom4 = [Aromatic(6), Aromatic(7), Aromatic(8), Aromatic(16)];
        match env {
            // [C;D3]([#0,#6,#7,#8])(=O)
            1 => {
                self.is(v, c)
                    && d == 3
                    && self.two(v, (&|k| self.plain(k), &[Any(0), Any(6), Any(7), Any(8)]), (&|k| self.double(k), &[o]))
            }
            // [O;D2]-;!@[#0,#6,#1]
            3 => {
                self.is(v, o) && d == 2 && self.neighbours(v, chain_single, &[Any(0), Any(6), Any(1)]).next().is_some()
            }
            // [C;!D1;!$(C=*)]-;!@[#6]
            4 => {
                self.is(v, c) && d != 1 && !has_double() && self.neighbours(v, chain_single, &[Any(6)]).next().is_some()
            }
            // [N;!D1;!$(N=*);!$(N-[!#6;!#16;!#0;!#1]);!$([N;R]@[C;R]=O)]
            5 => {
                self.is(v, n)
                    && d != 1
                    && !has_double()
                    && !self.adj[v]
                        .iter()
                        .any(|&(w, k)| self.single(k) && !matches!(self.mol.atoms[w].element, 6 | 16 | 0 | 1))
                    && !(self.in_ring[v]
                        && self.adj[v].iter().any(|&(w, k)| {
                            self.ring_bond[k]
                                && self.is(w, c)
                                && self.in_ring[w]
                                && self.adj[w].iter().any(|&(x, j)| self.double(j) && self.is(x, o))
                        }))
            }
            // [C;D3;!R](=O)-;!@[#0,#6,#7,#8]
            6 => {
                self.is(v, c)
                    && d == 3
                    && !self.in_ring[v]
                    && self.two(v, (&|k| self.double(k), &[o]), (&chain_single, &[Any(0), Any(6), Any(7), Any(8)]))
            }
            // [C;D2,D3]-[#6]
            7 => {
                self.is(v, c)
                    && (d == 2 || d == 3)
                    && self.neighbours(v, |k| self.single(k), &[Any(6)]).next().is_some()
            }
            // [C;!R;!D1;!$(C!-*)]
            8 => self.is(v, c) && !self.in_ring[v] && d != 1 && self.adj[v].iter().all(|&(_, k)| self.single(k)),
            // [n;+0;$(n(:[c,n,o,s]):[c,n,o,s])]
            9 => self.is(v, Aromatic(7)) && a == 0 && self.two(v, (&aro, &arom4), (&aro, &arom4)),
            // [N;R;$(N(@C(=O))@[C,N,O,S])]
            10 => {
                self.is(v, n)
                    && self.in_ring[v]
                    && self.adj[v].iter().any(|&(w, k)| {
                        ring(k)
                            && self.is(w, c)
                            && self.adj[w].iter().any(|&(x, j)| x != v && self.double(j) && self.is(x, o))
                            && self.neighbours(v, ring, &[c, n, o, s]).any(|y| y != w)
                    })
            }
            // [S;D2](-;!@[#0,#6])
            11 => self.is(v, s) && d == 2 && self.neighbours(v, chain_single, &[Any(0), Any(6)]).next().is_some(),
            // [S;D4]([#6,#0])(=O)(=O)
            12 => {
                self.is(v, s)
                    && d == 4
                    && self.neighbours(v, |k| self.plain(k), &[Any(6), Any(0)]).next().is_some()
                    && self.neighbours(v, |k| self.double(k), &[o]).count() >= 2
            }
            // [C;$(C(-;@[C,N,O,S])-;@[N,O,S])]
            13 => self.is(v, c) && self.two(v, (&ring_single, &[c, n, o, s]), (&ring_single, &[n, o, s])),
            // [c;$(c(:[c,n,o,s]):[n,o,s])]
            14 => self.is(v, Aromatic(6)) && self.two(v, (&aro, &arom4), (&aro, &arom4[1..])),
            // [C;$(C(-;@C)-;@C)]
            15 => self.is(v, c) && self.two(v, (&ring_single, &[c]), (&ring_single, &[c])),
            // [c;$(c(:c):c)]
            16 => self.is(v, Aromatic(6)) && self.two(v, (&aro, &[Aromatic(6)]), (&aro, &[Aromatic(6)])),
            _ => false,
        }
    }
}

/// RDKit's bond rules, in its order (tried last first): (environment of one end, of the other, a
/// double bond).
const RULES: [(u8, u8, bool); 46] = [
    (1, 3, false),
    (1, 5, false),
    (1, 10, false),
    (3, 4, false),
    (3, 13, false),
    (3, 14, false),
    (3, 15, false),
    (3, 16, false),
    (4, 5, false),
    (4, 11, false),
    (5, 12, false),
    (5, 14, false),
    (5, 16, false),
    (5, 13, false),
    (5, 15, false),
    (6, 13, false),
    (6, 14, false),
    (6, 15, false),
    (6, 16, false),
    (7, 7, true),
    (8, 9, false),
    (8, 10, false),
    (8, 13, false),
    (8, 14, false),
    (8, 15, false),
    (8, 16, false),
    (9, 13, false),
    (9, 14, false),
    (9, 15, false),
    (9, 16, false),
    (10, 13, false),
    (10, 14, false),
    (10, 15, false),
    (10, 16, false),
    (11, 13, false),
    (11, 14, false),
    (11, 15, false),
    (11, 16, false),
    (13, 14, false),
    (13, 15, false),
    (13, 16, false),
    (14, 14, false),
    (14, 15, false),
    (14, 16, false),
    (15, 16, false),
    (16, 16, false),
];

/// The bonds BRICS cuts, each with the environment numbers of its two ends `(bond, label of
/// bond.a's end, label of bond.b's end)`.
pub fn brics_bonds(mol: &Molecule) -> Vec<(usize, u8, u8)> {
    let view = View::new(mol);
    let mut env_cache: HashMap<(usize, u8), bool> = HashMap::new();
    let mut env = |v: usize, e: u8| *env_cache.entry((v, e)).or_insert_with(|| view.environment(v, e));
    let mut cut: Vec<(usize, u8, u8)> = Vec::new();
    for &(e1, e2, double) in RULES.iter().rev() {
        for (k, b) in mol.bonds.iter().enumerate() {
            if view.ring_bond[k] || cut.iter().any(|c| c.0 == k) {
                continue;
            }
            let kind = if double { view.double(k) } else { view.single(k) };
            if !kind {
                continue;
            }
            if env(b.a, e1) && env(b.b, e2) {
                cut.push((k, e1, e2));
            } else if env(b.b, e1) && env(b.a, e2) {
                cut.push((k, e2, e1));
            }
        }
    }
    cut
}

/// The BRICS fragments of `mol`: its pieces once the BRICS bonds are cut, each cut end capped by a
/// dummy atom labelled with its own environment, as canonical SMILES (a molecule with no BRICS
/// bond is its own one fragment).
pub fn fragments(mol: &Molecule) -> Vec<String> {
    let cut = brics_bonds(mol);
    let mut atoms = mol.atoms.clone();
    let mut bonds = Vec::with_capacity(mol.bonds.len() + cut.len());
    let mut kekule = Vec::with_capacity(mol.bonds.len() + cut.len());
    let mut implicit_h = mol.implicit_h.clone();
    for (k, (b, &o)) in mol.bonds.iter().zip(&mol.kekule).enumerate() {
        match cut.iter().find(|c| c.0 == k) {
            None => {
                bonds.push(*b);
                kekule.push(o);
            }
            Some(&(_, la, lb)) => {
                let order = if o == BondOrder::Double { BondOrder::Double } else { BondOrder::Single };
                for (end, label) in [(b.a, la), (b.b, lb)] {
                    atoms.push(Atom {
                        element: 0,
                        aromatic: false,
                        bracket: true,
                        isotope: Some(u16::from(label)),
                        charge: 0,
                        hydrogens: 0,
                    });
                    implicit_h.push(0);
                    bonds.push(Bond { a: end, b: atoms.len() - 1, order });
                    kekule.push(order);
                }
            }
        }
    }
    let whole = Molecule { atoms, bonds, kekule, implicit_h };
    // The pieces: connected parts of the cut graph.
    let n = whole.atoms.len();
    let (adj, _) = crate::molecule::topology(n, &whole.bonds);
    let mut part = vec![usize::MAX; n];
    let mut out = Vec::new();
    for start in 0..n {
        if part[start] != usize::MAX {
            continue;
        }
        let mut stack = vec![start];
        part[start] = start;
        while let Some(v) = stack.pop() {
            for &(w, _) in &adj[v] {
                if part[w] == usize::MAX {
                    part[w] = start;
                    stack.push(w);
                }
            }
        }
        let keep: Vec<bool> = part.iter().map(|&p| p == start).collect();
        out.push(canonical_smiles(&piece(&whole, &keep)));
    }
    out
}

/// The atoms of `keep` and their bonds, hydrogens as they were (a cut bond's valence went to its
/// dummy atom, so no atom's hydrogens change).
fn piece(mol: &Molecule, keep: &[bool]) -> Molecule {
    let mut index = vec![usize::MAX; mol.atoms.len()];
    let (mut atoms, mut implicit_h) = (Vec::new(), Vec::new());
    for (i, a) in mol.atoms.iter().enumerate().filter(|(i, _)| keep[*i]) {
        index[i] = atoms.len();
        atoms.push(a.clone());
        implicit_h.push(mol.implicit_h[i]);
    }
    let (mut bonds, mut kekule) = (Vec::new(), Vec::new());
    for (b, &o) in mol.bonds.iter().zip(&mol.kekule) {
        if keep[b.a] && keep[b.b] {
            bonds.push(Bond { a: index[b.a], b: index[b.b], order: b.order });
            kekule.push(o);
        }
    }
    Molecule { atoms, bonds, kekule, implicit_h }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::molecule::parse;

    fn frags(s: &str) -> Vec<String> {
        let mut f = fragments(&parse(s).unwrap());
        f.sort();
        f
    }

    fn canon(list: &[&str]) -> Vec<String> {
        let mut f: Vec<String> = list.iter().map(|s| canonical_smiles(&parse(s).unwrap())).collect();
        f.sort();
        f
    }

    /// RDKit's documented examples (`BRICS.BreakBRICSBonds`'s doctests).
    #[test]
    fn rdkit_examples() {
        assert_eq!(frags("CCCOCC"), canon(&["[3*]O[3*]", "[4*]CC", "[4*]CCC"]));
        assert_eq!(frags("CCCOCCC(=O)c1ccccc1"), canon(&["[16*]c1ccccc1", "[3*]O[3*]", "[4*]CCC", "[4*]CCC([6*])=O"]));
        assert_eq!(frags("CC(=O)Nc1ccc(O)cc1"), canon(&["[1*]C(C)=O", "[16*]c1ccc(O)cc1", "[5*]N[5*]"]));
        assert_eq!(frags("CC=CC"), canon(&["[7*]=CC", "[7*]=CC"]));
        // Ring bonds are never cut; environment 8 does not match a carbon bonded to a ring.
        assert_eq!(frags("O=C1NCCC1"), canon(&["O=C1NCCC1"]));
        assert_eq!(frags("CC1(C)CCCCC1"), canon(&["CC1(C)CCCCC1"]));
    }

    /// RDKit's fragments (`fixtures/brics.json`, MOSES's `fragmenter`) of 1,000 MOSES test molecules:
    /// the same multiset of fragments, RDKit's strings read and written in genlab's canonical form;
    /// and MOSES's Frag similarity of two sets of 2,000 molecules.
    #[test]
    fn fragments_match_rdkit() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/brics.json");
        let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let rows = fx["molecules"].as_array().unwrap();
        let mut differ = Vec::new();
        for r in rows {
            let s = r["smiles"].as_str().unwrap();
            let want: Vec<&str> = r["fragments"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
            let (got, want) = (frags(s), canon(&want));
            if got != want {
                differ.push(format!("{s}: genlab {got:?}, RDKit {want:?}"));
            }
        }
        assert!(differ.is_empty(), "{} of {} differ:\n{}", differ.len(), rows.len(), differ.join("\n"));
        let set = |k: &str| -> Vec<crate::Molecule> {
            fx["frag"][k].as_array().unwrap().iter().map(|s| parse(s.as_str().unwrap()).unwrap()).collect()
        };
        let (a, b) = (crate::moses::fragment_counts(&set("a")), crate::moses::fragment_counts(&set("b")));
        let sim = crate::moses::cosine(&a, &b);
        let want = fx["frag"]["similarity"].as_f64().unwrap();
        assert!((sim - want).abs() < 1e-9, "Frag {sim} vs RDKit/MOSES {want}");
    }
}
