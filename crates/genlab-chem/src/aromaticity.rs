//! Aromaticity perceived from a Kekulé structure, as RDKit perceives it when it reads a SMILES:
//! a ring is aromatic when each atom can give it electrons and they number 4n + 2 (Hückel). An
//! atom in a double bond gives 1 (0 when the double bond leaves the ring for O, N or S, as in a
//! pyridone; an exocyclic C=C disqualifies the ring); N, O, S, P and Se with no double bond give
//! their lone pair, 2; a negatively charged carbon 2, a positive one 0; any other saturated atom
//! disqualifies the ring. Rings are the simple cycles of up to 8 atoms; so a fused system aromatic
//! only as a whole (indolizine-like bridgehead systems, azulene) is not aromatic here, where RDKit
//! also tries fused ring systems. For canonical forms that costs nothing: the verdict is the same
//! for every way of writing the molecule.

use crate::molecule::{BondOrder, Molecule};

/// Each atom's aromaticity and each bond's order after perception (Aromatic in aromatic rings,
/// the Kekulé order elsewhere).
pub fn perceive(mol: &Molecule) -> (Vec<bool>, Vec<BondOrder>) {
    let n = mol.atoms.len();
    let (adj, ring) = crate::molecule::topology(n, &mol.bonds);
    let kek = &mol.kekule;
    // Each atom's contribution regardless of the ring: Some(electrons), or None (disqualifies).
    let give: Vec<Option<u32>> = (0..n)
        .map(|i| {
            let a = &mol.atoms[i];
            let double = adj[i].iter().find(|&&(_, k)| kek[k] == BondOrder::Double);
            if adj[i].iter().any(|&(_, k)| matches!(kek[k], BondOrder::Triple | BondOrder::Quadruple)) {
                return None;
            }
            let connections = adj[i].len() + (a.hydrogens + mol.implicit_h[i]) as usize;
            match double {
                // Exocyclic: to an electronegative atom a ring carbon gives nothing; any other
                // exocyclic double bond takes the atom out of aromaticity.
                Some(&(w, k)) if !ring[k] => {
                    (a.element == 6 && matches!(mol.atoms[w].element, 7 | 8 | 16)).then_some(0)
                }
                // In a ring: sp2 carbon, nitrogen, phosphorus, boron, and the pyrylium cations.
                Some(_) => match (a.element, a.charge) {
                    (5 | 6 | 7 | 15, _) | (8 | 16, 1) => Some(1),
                    _ => None,
                },
                None => match (a.element, a.charge) {
                    (6, -1) => Some(2),
                    (6, 1) | (5, 0) => Some(0),
                    (7 | 15, 0) if connections <= 3 => Some(2),
                    (8 | 16 | 34, 0) if connections == 2 => Some(2),
                    (7, -1) => Some(2),
                    _ => None,
                },
            }
        })
        .collect();
    // Only the rule decides, never the written form: every atom of an aromatic system has its
    // one double bond in each Kekulé structure (or none in any), and a double bond to any ring atom
    // counts, so the verdict does not depend on which Kekulé structure the reading found.
    let mut aromatic_atom = vec![false; n];
    let mut order: Vec<BondOrder> = kek.clone();
    let mut aromatic_bond = vec![false; mol.bonds.len()];
    for cycle in cycles(n, &adj, &ring, 8) {
        let (atoms, bonds) = cycle;
        let Some(sum) = atoms.iter().map(|&i| give[i]).sum::<Option<u32>>() else { continue };
        // Every double bond of an atom in the ring must lie in the ring or its fused neighbours:
        // an atom whose double bond leaves for a ring atom outside this ring still gives 1.
        if sum >= 2 && (sum - 2) % 4 == 0 {
            for &i in &atoms {
                aromatic_atom[i] = true;
            }
            for &k in &bonds {
                aromatic_bond[k] = true;
            }
        }
    }
    for (k, o) in order.iter_mut().enumerate() {
        if aromatic_bond[k] {
            *o = BondOrder::Aromatic;
        }
    }
    (aromatic_atom, order)
}

/// The simple cycles of at most `max` atoms through ring bonds, each once: (atoms, bonds).
fn cycles(n: usize, adj: &[Vec<(usize, usize)>], ring: &[bool], max: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut found: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    let mut seen: std::collections::HashSet<Vec<usize>> = Default::default();
    for start in 0..n {
        // Cycles whose smallest atom is `start`, by depth-first paths over larger atoms.
        let mut path = vec![start];
        let mut bonds = Vec::new();
        extend(start, start, adj, ring, max, &mut path, &mut bonds, &mut found, &mut seen);
    }
    found
}

#[allow(clippy::too_many_arguments)]
fn extend(
    start: usize,
    v: usize,
    adj: &[Vec<(usize, usize)>],
    ring: &[bool],
    max: usize,
    path: &mut Vec<usize>,
    bonds: &mut Vec<usize>,
    found: &mut Vec<(Vec<usize>, Vec<usize>)>,
    seen: &mut std::collections::HashSet<Vec<usize>>,
) {
    for &(w, k) in &adj[v] {
        if !ring[k] || bonds.contains(&k) {
            continue;
        }
        if w == start && path.len() >= 3 {
            let mut key = bonds.clone();
            key.push(k);
            key.sort_unstable();
            if seen.insert(key.clone()) {
                found.push((path.clone(), key));
            }
        } else if w > start && !path.contains(&w) && path.len() < max {
            path.push(w);
            bonds.push(k);
            extend(start, w, adj, ring, max, path, bonds, found, seen);
            path.pop();
            bonds.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::molecule::parse;

    fn aromatic_count(s: &str) -> usize {
        perceive(&parse(s).unwrap()).0.iter().filter(|&&a| a).count()
    }

    #[test]
    fn hueckel_rings() {
        assert_eq!(aromatic_count("C1=CC=CC=C1"), 6);
        assert_eq!(aromatic_count("c1ccccc1"), 6);
        assert_eq!(aromatic_count("C1=CNC=C1"), 5);
        assert_eq!(aromatic_count("O=C1C=CC=CN1"), 6);
        assert_eq!(aromatic_count("C1=CCC=C1"), 0);
        assert_eq!(aromatic_count("C1=CC=CC=CC=C1"), 0);
        assert_eq!(aromatic_count("c1ccc2ccccc2c1"), 10);
        assert_eq!(aromatic_count("C=C1C=CC=C1"), 0);
        assert_eq!(aromatic_count("c1ccsc1"), 5);
    }
}
