//! SELFIES (Krenn et al. 2020, "Self-referencing embedded strings", <https://arxiv.org/abs/1905.13741>),
//! version 2 as the `selfies` 2.1 package defines it: every string of symbols decodes to a valid
//! molecule, because each atom's bonds are capped by what its element can still take (the
//! package's default constraints: C 4, N 3, O 2, S 6, P 5, halogens 1, charged atoms shifted),
//! branches and ring bonds carry their lengths and distances in the following symbols read as base-16
//! digits, and a ring bond with no room left is dropped. The encoder writes a molecule's Kekulé
//! structure in its SMILES's atom order; decoding it gives the molecule back (the round trip is
//! checked on the MOSES test split), and the decoder reads the package's own strings as the package
//! does (checked on its encodings of 1,000 molecules).

use crate::molecule::{Atom, Bond, BondOrder, Molecule};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelfiesError {
    #[error("SELFIES {selfies:?}: symbol {symbol:?} is not a SELFIES symbol")]
    Symbol { selfies: String, symbol: String },
    #[error("SELFIES {selfies:?}: unclosed `[`")]
    Unclosed { selfies: String },
    #[error("SELFIES {selfies:?} has no atoms")]
    Empty { selfies: String },
    #[error(transparent)]
    Smiles(#[from] crate::molecule::MoleculeError),
}

/// The 16 symbols that double as base-16 digits after a branch or ring symbol.
const INDEX: [&str; 16] = [
    "[C]",
    "[Ring1]",
    "[Ring2]",
    "[Branch1]",
    "[=Branch1]",
    "[#Branch1]",
    "[Branch2]",
    "[=Branch2]",
    "[#Branch2]",
    "[O]",
    "[N]",
    "[=N]",
    "[=C]",
    "[#C]",
    "[S]",
    "[P]",
];

/// The package's default bond constraints: bonds an atom can take, by element and charge.
fn capacity(element: u8, charge: i8) -> i32 {
    match (element, charge) {
        (1 | 9 | 17 | 35 | 53, 0) => 1,
        (5, 0) => 3,
        (5, 1) => 2,
        (5, -1) => 4,
        (8, 0) => 2,
        (8, 1) => 3,
        (8, -1) => 1,
        (7, 0) => 3,
        (7, 1) => 4,
        (7, -1) => 2,
        (6, 0) => 4,
        (6, 1) | (6, -1) => 3,
        (15, 0) => 5,
        (15, 1) => 4,
        (15, -1) => 6,
        (16, 0) => 6,
        (16, 1) | (16, -1) => 5,
        _ => 8,
    }
}

fn order_of(bond: &str) -> u32 {
    match bond {
        "=" => 2,
        "#" => 3,
        _ => 1,
    }
}

fn bond_char(order: u32) -> &'static str {
    match order {
        2 => "=",
        3 => "#",
        _ => "",
    }
}

/// The symbols of a SELFIES string (`[nop]` dropped).
pub fn symbols(s: &str) -> Result<Vec<&str>, SelfiesError> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        if !rest.starts_with('[') {
            return Err(SelfiesError::Symbol {
                selfies: s.into(),
                symbol: rest.chars().next().unwrap_or(' ').to_string(),
            });
        }
        let end = rest.find(']').ok_or_else(|| SelfiesError::Unclosed { selfies: s.into() })?;
        let sym = &rest[..=end];
        if sym != "[nop]" {
            out.push(sym);
        }
        rest = &rest[end + 1..];
    }
    Ok(out)
}

/// A branch or ring symbol's bond order and digit count: `[=Branch2]` -> (2, 2).
fn structural(sym: &str, kind: &str) -> Option<(u32, usize)> {
    let inner = &sym[1..sym.len() - 1];
    let (bond, rest) = match inner.as_bytes().first()? {
        b'=' | b'#' => inner.split_at(1),
        _ => ("", inner),
    };
    let n: usize = rest.strip_prefix(kind)?.parse().ok()?;
    (1..=3).contains(&n).then_some((order_of(bond), n))
}

/// An atom symbol: bond order and the atom, with its written hydrogens (None for an organic-subset
/// symbol such as `[C]`, whose hydrogens are implicit).
fn atom_symbol(sym: &str) -> Option<(u32, Atom, Option<u8>)> {
    let inner = &sym[1..sym.len() - 1];
    let (bond, rest) = match inner.as_bytes().first()? {
        b'=' | b'#' | b'/' | b'\\' => inner.split_at(1),
        _ => ("", inner),
    };
    let organic = ["B", "C", "N", "O", "S", "P", "F", "Cl", "Br", "I"];
    if organic.contains(&rest) {
        let atom = crate::molecule::parse(rest).ok()?.atoms.remove(0);
        return Some((order_of(bond), atom, None));
    }
    let parsed = crate::molecule::parse(&format!("[{rest}]")).ok()?;
    let atom = parsed.atoms[0].clone();
    if atom.aromatic || atom.element == 0 {
        return None;
    }
    let h = atom.hydrogens;
    Some((order_of(bond), atom, Some(h)))
}

struct Graph {
    atoms: Vec<(Atom, Option<u8>)>,
    /// (a, b, order).
    bonds: Vec<(usize, usize, u32)>,
}

impl Graph {
    fn cap(&self, i: usize) -> i32 {
        let (a, h) = &self.atoms[i];
        capacity(a.element, a.charge) - h.unwrap_or(0) as i32
    }
    fn used(&self, i: usize) -> i32 {
        self.bonds.iter().filter(|b| b.0 == i || b.1 == i).map(|b| b.2 as i32).sum()
    }
}

/// Reads `n` index symbols (a missing or non-index symbol counts 0).
fn index(it: &mut std::slice::Iter<'_, &str>, n: usize) -> (usize, usize) {
    let mut q = 0;
    let mut read = 0;
    for _ in 0..n {
        let d = it.next().map(|s| {
            read += 1;
            INDEX.iter().position(|x| x == s).unwrap_or(0)
        });
        q = q * 16 + d.unwrap_or(0);
    }
    (q, read)
}

/// Derives atoms from `it`, at most `max` symbols, from `state` (bonds the previous atom can still
/// take; 0 at a fragment's start) and `prev`; returns the symbols consumed.
fn derive(
    it: &mut std::slice::Iter<'_, &str>,
    g: &mut Graph,
    rings: &mut Vec<(usize, usize, u32)>,
    max: usize,
    mut state: i32,
    mut prev: Option<usize>,
    selfies: &str,
) -> Result<usize, SelfiesError> {
    let mut derived = 0;
    let bad = |sym: &str| SelfiesError::Symbol { selfies: selfies.into(), symbol: sym.into() };
    while derived < max {
        let Some(&sym) = it.next() else { break };
        derived += 1;
        let next_state: Option<i32>;
        if sym.len() > 4 && &sym[sym.len() - 4..sym.len() - 2] == "ch" {
            let (btype, n) = structural(sym, "Branch").ok_or_else(|| bad(sym))?;
            if state <= 1 {
                next_state = Some(state);
            } else {
                let init = (state - 1).min(btype as i32);
                let (q, read) = index(it, n);
                derived += read + derive(it, g, rings, q + 1, init, prev, selfies)?;
                next_state = Some(state - init);
            }
        } else if sym.len() > 4 && &sym[sym.len() - 4..sym.len() - 2] == "ng" {
            let (rtype, n) = structural(sym, "Ring").ok_or_else(|| bad(sym))?;
            if state == 0 {
                next_state = Some(state);
            } else {
                let order = (rtype as i32).min(state);
                let (q, read) = index(it, n);
                derived += read;
                let here = prev.expect("a positive state follows an atom");
                let there = here.saturating_sub(q + 1);
                rings.push((there, here, order as u32));
                let left = state - order;
                next_state = (left > 0).then_some(left);
            }
        } else if sym.contains("eps") {
            next_state = if state == 0 { Some(0) } else { None };
        } else {
            let (bond, atom, h) = atom_symbol(sym).ok_or_else(|| bad(sym))?;
            let cap = capacity(atom.element, atom.charge) - h.unwrap_or(0) as i32;
            if cap < 0 {
                return Err(bad(sym));
            }
            let order = if state == 0 { 0 } else { (bond as i32).min(state).min(cap) };
            let left = cap - order;
            if order == 0 && state != 0 {
                // No room for the atom: it is not added, and the derivation ends.
                next_state = None;
            } else {
                g.atoms.push((atom, h));
                let i = g.atoms.len() - 1;
                if order > 0 {
                    g.bonds.push((prev.expect("a bond follows an atom"), i, order as u32));
                }
                prev = Some(i);
                next_state = (left > 0).then_some(left);
            }
        }
        match next_state {
            None => break,
            Some(s) => state = s,
        }
    }
    while derived < max && it.next().is_some() {
        derived += 1;
    }
    Ok(derived)
}

/// The molecule `selfies` decodes to (always valid; an empty string is an error).
pub fn decode(selfies: &str) -> Result<Molecule, SelfiesError> {
    let mut g = Graph { atoms: vec![], bonds: vec![] };
    let mut rings = Vec::new();
    for fragment in selfies.split('.') {
        let syms = symbols(fragment)?;
        derive(&mut syms.iter(), &mut g, &mut rings, usize::MAX, 0, None, selfies)?;
    }
    for (l, r, order) in rings {
        if l == r {
            continue;
        }
        let (lfree, rfree) = (g.cap(l) - g.used(l), g.cap(r) - g.used(r));
        if lfree <= 0 || rfree <= 0 {
            continue;
        }
        let order = (order as i32).min(lfree).min(rfree) as u32;
        if let Some(b) = g.bonds.iter_mut().find(|b| (b.0 == l && b.1 == r) || (b.0 == r && b.1 == l)) {
            b.2 = (b.2 + order).min(3);
        } else {
            g.bonds.push((l, r, order));
        }
    }
    if g.atoms.is_empty() {
        return Err(SelfiesError::Empty { selfies: selfies.into() });
    }
    Ok(molecule(g))
}

fn molecule(g: Graph) -> Molecule {
    let to_order = |o: u32| match o {
        2 => BondOrder::Double,
        3 => BondOrder::Triple,
        _ => BondOrder::Single,
    };
    let bonds: Vec<Bond> = g.bonds.iter().map(|&(a, b, o)| Bond { a, b, order: to_order(o) }).collect();
    let kekule = bonds.iter().map(|b| b.order).collect();
    let atoms: Vec<Atom> = g
        .atoms
        .into_iter()
        .map(|(mut a, h)| {
            a.aromatic = false;
            a.bracket = h.is_some();
            a.hydrogens = h.unwrap_or(0);
            a
        })
        .collect();
    let mut m = Molecule { atoms, bonds, kekule, implicit_h: vec![] };
    m.implicit_h =
        (0..m.atoms.len()).map(|v| if m.atoms[v].bracket { 0 } else { m.implicit_h_if_organic(v) as u8 }).collect();
    m
}

/// The SELFIES of the molecule `smiles` writes: its Kekulé structure, atoms in the SMILES's order.
pub fn encode(smiles: &str) -> Result<String, SelfiesError> {
    let mol = crate::molecule::parse(smiles)?;
    let n = mol.atoms.len();
    // The tree: each atom's first bond to an earlier atom was written with it; later bonds to it
    // are ring closures, written at it (the later atom).
    let mut parent: Vec<Option<(usize, usize)>> = vec![None; n];
    let mut closures: Vec<Vec<(usize, usize)>> = vec![vec![]; n];
    let mut children: Vec<Vec<(usize, usize)>> = vec![vec![]; n];
    for (k, b) in mol.bonds.iter().enumerate() {
        if parent[b.b].is_none() && !closures_written_before(&mol, k) {
            parent[b.b] = Some((b.a, k));
            children[b.a].push((b.b, k));
        } else {
            closures[b.b].push((b.a, k));
        }
    }
    let order = |k: usize| mol.kekule[k].valence_order();
    let mut fragments = Vec::new();
    for root in (0..n).filter(|&v| parent[v].is_none()) {
        let mut out = Vec::new();
        chain(&mol, root, 0, &children, &closures, &order, &mut out);
        fragments.push(out.concat());
    }
    Ok(fragments.join("."))
}

/// Whether bond `k` closes a ring: a bond to an atom that already has its tree bond.
fn closures_written_before(mol: &Molecule, k: usize) -> bool {
    let b = mol.bonds[k].b;
    mol.bonds[..k].iter().any(|e| e.b == b)
}

fn chain(
    mol: &Molecule,
    v: usize,
    bond: u32,
    children: &[Vec<(usize, usize)>],
    closures: &[Vec<(usize, usize)>],
    order: &dyn Fn(usize) -> u32,
    out: &mut Vec<String>,
) {
    out.push(atom_text(mol, v, bond));
    for &(u, k) in &closures[v] {
        let q = v - u - 1;
        let digits = index_symbols(q);
        out.push(format!("[{}Ring{}]", bond_char(order(k)), digits.len()));
        out.extend(digits);
    }
    let kids = &children[v];
    for (c, &(w, k)) in kids.iter().enumerate() {
        if c + 1 < kids.len() {
            let mut body = Vec::new();
            chain(mol, w, order(k), children, closures, order, &mut body);
            let digits = index_symbols(body.len() - 1);
            out.push(format!("[{}Branch{}]", bond_char(order(k)), digits.len()));
            out.extend(digits);
            out.extend(body);
        } else {
            chain(mol, w, order(k), children, closures, order, out);
        }
    }
}

/// `q` as base-16 index symbols, most significant first.
fn index_symbols(mut q: usize) -> Vec<String> {
    let mut digits = vec![INDEX[q % 16].to_string()];
    q /= 16;
    while q > 0 {
        digits.insert(0, INDEX[q % 16].to_string());
        q /= 16;
    }
    digits
}

fn atom_text(mol: &Molecule, v: usize, bond: u32) -> String {
    let a = &mol.atoms[v];
    let sym = crate::molecule::symbol(a.element);
    let b = bond_char(bond);
    let organic = matches!(a.element, 5 | 6 | 7 | 8 | 9 | 15 | 16 | 17 | 35 | 53);
    let h = a.hydrogens as u32 + mol.implicit_h[v] as u32;
    if organic && a.charge == 0 && a.isotope.is_none() && h == mol.implicit_h_if_organic(v) {
        return format!("[{b}{sym}]");
    }
    let mut s = format!("[{b}");
    if let Some(i) = a.isotope {
        s.push_str(&i.to_string());
    }
    s.push_str(sym);
    if h > 0 {
        s.push_str(&format!("H{h}"));
    }
    if a.charge != 0 {
        s.push_str(&format!("{:+}", a.charge));
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests;
