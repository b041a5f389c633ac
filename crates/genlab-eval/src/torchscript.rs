//! Reads the tensors of a TorchScript archive (`torch.jit.save`) without Python: the zip holds
//! `*/data.pkl`, a protocol-2 pickle of the module tree whose tensors are
//! `torch._utils._rebuild_tensor_v2` calls on persistent storages `*/data/N` (raw little-endian
//! bytes). Only the opcodes such archives use are understood; anything else is a clear error.
//! Tensors are named by their attribute path (`net.layers.conv.weight`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TorchScriptError {
    #[error("{path}: {reason}")]
    Archive { path: String, reason: String },
    #[error("{path}: data.pkl: {reason}")]
    Pickle { path: String, reason: String },
}

/// A float32 tensor read from the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

// Every field shows in the `Debug` text of an unexpected value's error message.
#[allow(dead_code)]
#[derive(Debug, Clone)]
enum Value {
    Mark,
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String),
    PersistentId(Box<Value>),
    Object { class: String, state: Box<Value> },
    Tensor { storage: String, dtype: String, offset: usize, shape: Vec<usize>, stride: Vec<usize> },
}

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: BTreeMap<u32, Value>,
}

impl<'a> Unpickler<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or("truncated pickle")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn line(&mut self) -> Result<String, String> {
        let start = self.pos;
        while self.u8()? != b'\n' {}
        Ok(String::from_utf8_lossy(&self.data[start..self.pos - 1]).into_owned())
    }
    fn pop(&mut self) -> Result<Value, String> {
        self.stack.pop().ok_or_else(|| "stack underflow".to_string())
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let at = self.stack.iter().rposition(|v| matches!(v, Value::Mark)).ok_or("MARK missing")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }
    fn top(&mut self) -> Result<&mut Value, String> {
        self.stack.last_mut().ok_or_else(|| "stack underflow".to_string())
    }

    fn run(mut self) -> Result<Value, String> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                b'c' => {
                    let (module, name) = (self.line()?, self.line()?);
                    self.stack.push(Value::Global(format!("{module}.{name}")));
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'r' => {
                    let i = self.u32()?;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'h' | b'j' => {
                    let i = if op == b'h' { self.u8()? as u32 } else { self.u32()? };
                    let v = self.memo.get(&i).cloned().ok_or_else(|| format!("memo {i} missing"))?;
                    self.stack.push(v);
                }
                b')' => self.stack.push(Value::Tuple(vec![])),
                b'}' => self.stack.push(Value::Dict(vec![])),
                b']' => self.stack.push(Value::List(vec![])),
                b'(' => self.stack.push(Value::Mark),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.stack.push(Value::Int(v));
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'M' => {
                    let b = self.take(2)?;
                    self.stack.push(Value::Int(u16::from_le_bytes([b[0], b[1]]) as i64));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "string is not UTF-8")?;
                    self.stack.push(Value::Str(s));
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(Value::PersistentId(Box::new(pid)));
                }
                0x81 => {
                    let _args = self.pop()?; // NEWOBJ
                    let class = match self.pop()? {
                        Value::Global(g) => g,
                        other => return Err(format!("NEWOBJ of a non-class {other:?}")),
                    };
                    self.stack.push(Value::Object { class, state: Box::new(Value::None) });
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = reduce(callable, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    match self.top()? {
                        Value::Object { state: s, .. } => **s = state,
                        other => return Err(format!("BUILD on {other:?}")),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let Value::Dict(d) = self.top()? else { return Err("SETITEMS on a non-dict".into()) };
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        d.push((k, v));
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let Value::List(l) = self.top()? else { return Err("APPENDS on a non-list".into()) };
                    l.extend(items);
                }
                b'.' => return self.pop(),
                other => return Err(format!("unsupported pickle opcode {other:#04x} at byte {}", self.pos - 1)),
            }
        }
    }
}

fn ints(v: &Value) -> Result<Vec<usize>, String> {
    match v {
        Value::Tuple(items) => items
            .iter()
            .map(|i| match i {
                Value::Int(n) if *n >= 0 => Ok(*n as usize),
                other => Err(format!("expected a size, found {other:?}")),
            })
            .collect(),
        other => Err(format!("expected a tuple of sizes, found {other:?}")),
    }
}

fn reduce(callable: Value, args: Value) -> Result<Value, String> {
    let Value::Global(name) = callable else { return Err(format!("REDUCE of {callable:?}")) };
    let Value::Tuple(a) = args else { return Err(format!("REDUCE {name} without an argument tuple")) };
    match name.as_str() {
        "torch._utils._rebuild_tensor_v2" => {
            let [Value::PersistentId(pid), Value::Int(offset), shape, stride, ..] = &a[..] else {
                return Err("unexpected _rebuild_tensor_v2 arguments".into());
            };
            let Value::Tuple(p) = &**pid else { return Err("unexpected storage id".into()) };
            let (Some(Value::Global(dtype)), Some(Value::Str(key))) = (p.get(1), p.get(2)) else {
                return Err("unexpected storage id".into());
            };
            Ok(Value::Tensor {
                storage: key.clone(),
                dtype: dtype.clone(),
                offset: *offset as usize,
                shape: ints(shape)?,
                stride: ints(stride)?,
            })
        }
        "collections.OrderedDict" => Ok(Value::Dict(vec![])),
        _ => Ok(Value::Object { class: name, state: Box::new(Value::Tuple(a)) }),
    }
}

/// Collects the tensors under `v`, named by attribute path.
fn collect(v: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Tensor { .. } => out.push((path.to_string(), v.clone())),
        Value::Object { state, .. } => collect(state, path, out),
        Value::Dict(items) => {
            for (k, v) in items {
                if let Value::Str(k) = k {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    collect(v, &p, out);
                }
            }
        }
        Value::List(items) | Value::Tuple(items) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, &format!("{path}.{i}"), out);
            }
        }
        _ => {}
    }
}

/// Every float32 tensor of the TorchScript archive at `path`, by attribute path.
pub fn read_torchscript(path: &Path) -> Result<BTreeMap<String, ScriptTensor>, TorchScriptError> {
    let p = path.display().to_string();
    let archive_err = |reason: String| TorchScriptError::Archive { path: p.clone(), reason };
    genlab_core::files::regular_size(path).map_err(|e| archive_err(e.to_string()))?;
    let file = std::fs::File::open(path).map_err(|e| archive_err(e.to_string()))?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| archive_err(format!("not a TorchScript zip archive ({e})")))?;
    let pkl_name = (0..zip.len())
        .filter_map(|i| zip.name_for_index(i).map(str::to_string))
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .ok_or_else(|| archive_err("no <root>/data.pkl entry: not a TorchScript archive".into()))?;
    let root = pkl_name.trim_end_matches("data.pkl").to_string();
    let mut read_entry = |name: &str| -> Result<Vec<u8>, TorchScriptError> {
        let mut e = zip.by_name(name).map_err(|e| archive_err(format!("{name}: {e}")))?;
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).map_err(|e| archive_err(format!("{name}: {e}")))?;
        Ok(buf)
    };
    let pkl = read_entry(&pkl_name)?;
    let tree = Unpickler { data: &pkl, pos: 0, stack: vec![], memo: BTreeMap::new() }
        .run()
        .map_err(|reason| TorchScriptError::Pickle { path: p.clone(), reason })?;
    let mut found = Vec::new();
    collect(&tree, "", &mut found);
    let mut out = BTreeMap::new();
    for (name, t) in found {
        let Value::Tensor { storage, dtype, offset, shape, stride } = t else {
            unreachable!("collect keeps tensors only")
        };
        if dtype != "torch.FloatStorage" {
            return Err(archive_err(format!("tensor {name} is {dtype}, only float32 is supported")));
        }
        let numel: usize = shape.iter().product();
        let mut contiguous = vec![1usize; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            contiguous[i] = contiguous[i + 1] * shape[i + 1];
        }
        if numel > 1 && stride != contiguous {
            return Err(archive_err(format!(
                "tensor {name} has strides {stride:?}, only contiguous tensors are supported"
            )));
        }
        let bytes = read_entry(&format!("{root}data/{storage}"))?;
        let end = (offset + numel) * 4;
        if bytes.len() < end {
            return Err(archive_err(format!(
                "storage {storage} of tensor {name} holds {} bytes, needs {end}",
                bytes.len()
            )));
        }
        let data =
            bytes[offset * 4..end].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.insert(name, ScriptTensor { shape, data });
    }
    Ok(out)
}
