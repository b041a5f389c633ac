//! Canonical SMILES: one string per molecule, whatever atom order and ring-closure choices its
//! SMILES was written with, for MOSES's uniqueness and novelty. Atoms are ranked by their
//! invariants (element, aromaticity, isotope, charge, hydrogens, degree, ring membership), the
//! ranks refined by the neighbours' ranks and bond orders until stable (Weininger et al. 1989's
//! CANON, as RDKit's canonicaliser starts), ties broken by splitting the first tied class and
//! refining again; the string is written depth first from the lowest-ranked atom, neighbours in
//! rank order. Not RDKit's string, but the same decisions: two SMILES get the same canonical form
//! exactly when RDKit's canonical SMILES of them are the same (measured on the fixture).
//!
//! Aromaticity is perceived from the Kekulé structure ([`crate::aromaticity`]), never taken as
//! written, so `C1=CC=CC=C1`, `c1ccccc1` and `c1-ccccc1` are one molecule (the written string may
//! differ from RDKit's where RDKit finds a fused system aromatic as a whole). Limits:
//! stereochemistry is not represented (MOSES has none), and ties that refinement leaves between
//! atoms that are not symmetric would be broken by input order (no molecule of the fixture has one).

use crate::molecule::{BondOrder, Molecule};

/// The canonical SMILES of `mol`. Should its aromatic form not read back (a ring the Hückel rule
/// calls aromatic that has no Kekulé structure by the reading rules), the Kekulé form is written:
/// still one string per molecule.
pub fn canonical_smiles(mol: &Molecule) -> String {
    let aromatic = canonical_with(mol, true);
    if crate::molecule::parse(&aromatic).is_ok() {
        return aromatic;
    }
    canonical_with(mol, false)
}

fn canonical_with(mol: &Molecule, perceive: bool) -> String {
    let n = mol.atoms.len();
    let (adj, ring) = crate::molecule::topology(n, &mol.bonds);
    // Aromaticity as perceived from the Kekulé structure, not as written: `C1=CC=CC=C1`,
    // `c1ccccc1` and `c1-ccccc1` are one molecule.
    let (aromatic, perceived) =
        if perceive { crate::aromaticity::perceive(mol) } else { (vec![false; n], mol.kekule.clone()) };
    let order = |k: usize| -> BondOrder { perceived[k] };
    let code = |o: BondOrder| -> u8 {
        match o {
            BondOrder::Single => 1,
            BondOrder::Double => 2,
            BondOrder::Triple => 3,
            BondOrder::Quadruple => 4,
            BondOrder::Aromatic => 5,
        }
    };
    let hydrogens = |i: usize| mol.atoms[i].hydrogens as u32 + mol.implicit_h[i] as u32;
    let invariant: Vec<(u8, bool, u16, i8, u32, usize, bool)> = (0..n)
        .map(|i| {
            let a = &mol.atoms[i];
            let in_ring = adj[i].iter().any(|&(_, k)| ring[k]);
            (a.element, aromatic[i], a.isotope.unwrap_or(0), a.charge, hydrogens(i), adj[i].len(), in_ring)
        })
        .collect();
    let mut rank = ranks_of(&invariant);
    loop {
        refine(&mut rank, &adj, &|k| code(order(k)));
        // Split the first tied class: its first member (in the current order) goes first.
        let mut seen = vec![usize::MAX; n];
        let mut tie = None;
        for i in 0..n {
            if seen[rank[i]] != usize::MAX {
                tie = Some(seen[rank[i]]);
                break;
            }
            seen[rank[i]] = i;
        }
        let Some(first) = tie else { break };
        let keys: Vec<(usize, bool)> = (0..n).map(|i| (rank[i], i != first)).collect();
        rank = ranks_of(&keys);
    }
    write(mol, &adj, &rank, &order, &aromatic)
}

/// Dense ranks (0, 1, ...) of `keys`, equal keys equal ranks.
fn ranks_of<K: Ord + Clone>(keys: &[K]) -> Vec<usize> {
    let mut sorted: Vec<K> = keys.to_vec();
    sorted.sort();
    sorted.dedup();
    keys.iter().map(|k| sorted.binary_search(k).expect("present")).collect()
}

/// Refines `rank` by each atom's sorted (bond, neighbour rank) list until the classes stop
/// splitting.
fn refine(rank: &mut Vec<usize>, adj: &[Vec<(usize, usize)>], code: &dyn Fn(usize) -> u8) {
    loop {
        let classes = rank.iter().collect::<std::collections::BTreeSet<_>>().len();
        let keys: Vec<(usize, Vec<(u8, usize)>)> = (0..rank.len())
            .map(|i| {
                let mut nb: Vec<(u8, usize)> = adj[i].iter().map(|&(w, k)| (code(k), rank[w])).collect();
                nb.sort();
                (rank[i], nb)
            })
            .collect();
        let next = ranks_of(&keys);
        let after = next.iter().collect::<std::collections::BTreeSet<_>>().len();
        *rank = next;
        if after == classes {
            return;
        }
    }
}

/// The SMILES of `mol` written depth first in rank order.
fn write(
    mol: &Molecule,
    adj: &[Vec<(usize, usize)>],
    rank: &[usize],
    order: &dyn Fn(usize) -> BondOrder,
    aromatic: &[bool],
) -> String {
    let n = mol.atoms.len();
    let mut by_rank: Vec<usize> = (0..n).collect();
    by_rank.sort_by_key(|&i| rank[i]);
    // First pass: the depth-first tree; every other bond is a ring closure, opened at the atom
    // visited first.
    let mut visited = vec![false; n];
    let mut tree_bond = vec![false; mol.bonds.len()];
    let mut visit_order = Vec::with_capacity(n);
    let mut roots = Vec::new();
    for &start in &by_rank {
        if visited[start] {
            continue;
        }
        roots.push(start);
        visited[start] = true;
        dfs(start, adj, rank, &mut visited, &mut tree_bond, &mut visit_order);
    }
    let position: Vec<usize> = {
        let mut p = vec![0; n];
        for (k, &v) in visit_order.iter().enumerate() {
            p[v] = k;
        }
        p
    };
    let mut out = String::new();
    let mut free_digits: Vec<u32> = Vec::new();
    let mut next_digit = 1u32;
    let mut open: std::collections::HashMap<usize, u32> = Default::default();
    for (c, &root) in roots.iter().enumerate() {
        if c > 0 {
            out.push('.');
        }
        let mut ctx = Writer {
            mol,
            aromatic,
            adj,
            rank,
            order,
            tree_bond: &tree_bond,
            position: &position,
            free_digits: &mut free_digits,
            next_digit: &mut next_digit,
            open: &mut open,
        };
        ctx.atom(root, None, &mut out);
    }
    out
}

fn dfs(
    v: usize,
    adj: &[Vec<(usize, usize)>],
    rank: &[usize],
    visited: &mut [bool],
    tree: &mut [bool],
    order: &mut Vec<usize>,
) {
    order.push(v);
    let mut nb: Vec<(usize, usize)> = adj[v].to_vec();
    nb.sort_by_key(|&(w, _)| rank[w]);
    for (w, k) in nb {
        if !visited[w] {
            visited[w] = true;
            tree[k] = true;
            dfs(w, adj, rank, visited, tree, order);
        }
    }
}

struct Writer<'a> {
    mol: &'a Molecule,
    aromatic: &'a [bool],
    adj: &'a [Vec<(usize, usize)>],
    rank: &'a [usize],
    order: &'a dyn Fn(usize) -> BondOrder,
    tree_bond: &'a [bool],
    position: &'a [usize],
    free_digits: &'a mut Vec<u32>,
    next_digit: &'a mut u32,
    /// Open ring closures: bond -> digit.
    open: &'a mut std::collections::HashMap<usize, u32>,
}

impl Writer<'_> {
    fn bond_symbol(&self, k: usize, out: &mut String) {
        let b = self.mol.bonds[k];
        let both_aromatic = self.aromatic[b.a] && self.aromatic[b.b];
        match (self.order)(k) {
            BondOrder::Single if both_aromatic => out.push('-'),
            BondOrder::Single | BondOrder::Aromatic => {}
            BondOrder::Double => out.push('='),
            BondOrder::Triple => out.push('#'),
            BondOrder::Quadruple => out.push('$'),
        }
    }

    fn digit(d: u32, out: &mut String) {
        if d < 10 {
            out.push(char::from(b'0' + d as u8));
        } else {
            out.push_str(&format!("%{d}"));
        }
    }

    fn atom(&mut self, v: usize, parent_bond: Option<usize>, out: &mut String) {
        out.push_str(&atom_text(self.mol, v, self.aromatic[v]));
        // Ring closures at this atom, by the other atom's rank: close the ones opened earlier, open
        // the others.
        let mut closures: Vec<(usize, usize)> =
            self.adj[v].iter().copied().filter(|&(_, k)| !self.tree_bond[k] && Some(k) != parent_bond).collect();
        closures.sort_by_key(|&(w, _)| (self.position[w], self.rank[w]));
        for (w, k) in closures {
            if let Some(d) = self.open.remove(&k) {
                self.bond_symbol(k, out);
                Self::digit(d, out);
                self.free_digits.push(d);
                self.free_digits.sort_unstable_by(|a, b| b.cmp(a));
            } else if self.position[w] > self.position[v] {
                let d = self.free_digits.pop().unwrap_or_else(|| {
                    let d = *self.next_digit;
                    *self.next_digit += 1;
                    d
                });
                self.bond_symbol(k, out);
                Self::digit(d, out);
                self.open.insert(k, d);
            }
        }
        let mut children: Vec<(usize, usize)> = self.adj[v]
            .iter()
            .copied()
            .filter(|&(w, k)| self.tree_bond[k] && Some(k) != parent_bond && self.position[w] > self.position[v])
            .collect();
        children.sort_by_key(|&(w, _)| self.rank[w]);
        let last = children.len().saturating_sub(1);
        for (c, (w, k)) in children.into_iter().enumerate() {
            let branch = c < last;
            if branch {
                out.push('(');
            }
            self.bond_symbol(k, out);
            self.atom(w, Some(k), out);
            if branch {
                out.push(')');
            }
        }
    }
}

/// An atom as SMILES writes it: its organic-subset symbol when that says everything, else a
/// bracket atom with isotope, hydrogens and charge.
fn atom_text(mol: &Molecule, v: usize, aromatic: bool) -> String {
    let a = &mol.atoms[v];
    let sym = crate::molecule::symbol(a.element);
    let organic = matches!(a.element, 5 | 6 | 7 | 8 | 9 | 15 | 16 | 17 | 35 | 53);
    // The organic symbol serves when it implies the atom's hydrogens; an aromatic N or P with a
    // hydrogen keeps brackets (`[nH]`: a bare `n` would be read as pyridine-like).
    let total_h = a.hydrogens as u32 + mol.implicit_h[v] as u32;
    let implicit_fits =
        total_h == mol.implicit_h_if_organic(v) && !(aromatic && matches!(a.element, 7 | 15) && total_h > 0);
    let text = if aromatic { sym.to_ascii_lowercase() } else { sym.to_string() };
    if organic && a.charge == 0 && a.isotope.is_none() && implicit_fits {
        return text;
    }
    let mut s = String::from("[");
    if let Some(i) = a.isotope {
        s.push_str(&i.to_string());
    }
    s.push_str(&text);
    match total_h {
        0 => {}
        1 => s.push('H'),
        h => s.push_str(&format!("H{h}")),
    }
    match a.charge {
        0 => {}
        1 => s.push('+'),
        -1 => s.push('-'),
        c if c > 0 => s.push_str(&format!("+{c}")),
        c => s.push_str(&format!("-{}", -c)),
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests;
