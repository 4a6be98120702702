//! The storage check of a PyTorch zip checkpoint (`torch.save` since PyTorch 1.6), run before
//! `burn-store` reads it.
//!
//! `burn-store` 0.21 builds each tensor from its storage entry (`<prefix>/data/<key>`) lazily, and
//! when that entry is absent or unreadable, or shorter than the tensor, it hands back zeros (or
//! zero-pads) instead of failing; it also ignores strides. So before it runs, this module reads
//! the archive's pickle *without executing it* (a small pickle machine that only records the
//! tensors' storage references), finds every tensor's storage entry as `burn-store` will, reads
//! that entry through (so a CRC mismatch or a truncated entry shows) and checks that it holds the
//! tensor's bytes. Anything else is a [`TensorDamage`] naming the tensor.
//!
//! The pickle machine also bounds what `burn-store`'s reader would do with a hostile pickle: the
//! pickle's size, the nesting depth and the size of the object tree (which `burn-store` copies
//! on every memo lookup).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;
use std::rc::Rc;

use crate::{Error, Result, TensorDamage};

/// The largest pickle (`data.pkl`) read: the release model's is a few KB.
const MAX_PICKLE_BYTES: u64 = 64 << 20;
/// The deepest nesting of containers accepted (a state dict is 2–4 deep).
const MAX_DEPTH: u32 = 64;
/// The largest object tree accepted, counting shared objects once per reference.
const MAX_TREE_NODES: u64 = 1 << 22;

/// One tensor of the pickle: its storage reference as written by `_rebuild_tensor_v2`.
#[derive(Debug, Clone)]
struct PthTensor {
    /// Storage key (`"0"`, `"1"`, …): the archive entry is `<prefix>data/<key>`.
    key: String,
    /// Bytes per element of the storage type.
    element_size: u64,
    /// Elements of the storage as declared in the persistent id, if it says.
    storage_numel: Option<i64>,
    /// Offset into the storage, in elements.
    offset: i64,
    /// Shape.
    shape: Vec<i64>,
    /// Strides, in elements.
    stride: Vec<i64>,
}

type Step<T> = std::result::Result<T, String>;

/// A pickle value, shared (cloning is cheap) and sized.
#[derive(Debug, Clone)]
struct Val(Rc<Node>);

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    /// Nesting depth of the tree below (a leaf is 0).
    depth: u32,
    /// Nodes of the tree below, counting a shared node once per reference (saturating).
    nodes: u64,
}

#[derive(Debug, Clone)]
enum Kind {
    Leaf,
    Int(i64),
    Str(String),
    Mark,
    Global {
        module: String,
        name: String,
    },
    Seq(Vec<Val>),
    Dict(Vec<(Val, Val)>),
    /// A persistent id `('storage', type, key, location, numel)`.
    Storage {
        key: String,
        element_size: Option<u64>,
        type_name: String,
        numel: Option<i64>,
    },
    /// A tensor: an index into [`Machine::tensors`].
    Tensor(usize),
    /// Anything else built by a call, with its argument.
    Object(Val),
}

impl Val {
    fn leaf(kind: Kind) -> Self {
        Self(Rc::new(Node {
            kind,
            depth: 0,
            nodes: 1,
        }))
    }

    /// A node of `kind` over `children`, refused when the tree gets too deep or too large.
    fn parent<'v>(kind: Kind, children: impl IntoIterator<Item = &'v Val>) -> Step<Self> {
        let (mut depth, mut nodes) = (0u32, 1u64);
        for c in children {
            depth = depth.max(c.0.depth + 1);
            nodes = nodes.saturating_add(c.0.nodes);
        }
        check_size(depth, nodes)?;
        Ok(Self(Rc::new(Node { kind, depth, nodes })))
    }

    fn seq(items: Vec<Val>) -> Step<Self> {
        let probe = Self::parent(Kind::Leaf, &items)?;
        Ok(probe.with_kind(Kind::Seq(items)))
    }

    /// An opaque object holding `inner`.
    fn object(inner: Val) -> Step<Self> {
        let probe = Self::parent(Kind::Leaf, [&inner])?;
        Ok(probe.with_kind(Kind::Object(inner)))
    }

    /// The same size and depth with another kind (over the children that were measured).
    fn with_kind(self, kind: Kind) -> Self {
        Self(Rc::new(Node {
            kind,
            depth: self.0.depth,
            nodes: self.0.nodes,
        }))
    }

    fn items(&self) -> Option<&[Val]> {
        match &self.0.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    fn int(&self) -> Option<i64> {
        match self.0.kind {
            Kind::Int(v) => Some(v),
            _ => None,
        }
    }

    fn is_mark(&self) -> bool {
        matches!(self.0.kind, Kind::Mark)
    }
}

fn check_size(depth: u32, nodes: u64) -> Step<()> {
    if depth > MAX_DEPTH {
        return Err(format!("the pickle nests deeper than {MAX_DEPTH} levels"));
    }
    if nodes > MAX_TREE_NODES {
        return Err(format!(
            "the pickle's object tree has more than {MAX_TREE_NODES} nodes"
        ));
    }
    Ok(())
}

/// Bytes per element of a PyTorch storage type.
fn element_size(type_name: &str) -> Option<u64> {
    Some(match type_name {
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "CharStorage" | "ByteStorage" | "BoolStorage" => 1,
        "ComplexDoubleStorage" => 16,
        _ => return None,
    })
}

/// A pickle machine that builds values without running any code: globals stay names, calls
/// stay [`Kind::Object`] except the few of PyTorch's tensor rebuilders.
struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    stack: Vec<Val>,
    memo: HashMap<u64, Val>,
    tensors: Vec<PthTensor>,
}

impl<'a> Machine<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            pos: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
            tensors: Vec::new(),
        }
    }

    fn take(&mut self, n: u64) -> Step<&'a [u8]> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&end| end <= self.input.len())
            .ok_or("the pickle ends inside an opcode")?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Step<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Step<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    fn line(&mut self) -> Step<&'a str> {
        let rest = &self.input[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("the pickle ends inside a text opcode")?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| "a text opcode is not UTF-8".to_string())
    }

    fn text(&mut self, n: u64) -> Step<Val> {
        let bytes = self.take(n)?;
        let s = std::str::from_utf8(bytes).map_err(|_| "a string is not UTF-8".to_string())?;
        Ok(Val::leaf(Kind::Str(s.to_string())))
    }

    fn pop(&mut self) -> Step<Val> {
        self.stack
            .pop()
            .ok_or_else(|| "pickle stack underflow".into())
    }

    fn pop_mark(&mut self) -> Step<Vec<Val>> {
        let mark = self
            .stack
            .iter()
            .rposition(Val::is_mark)
            .ok_or("pickle MARK missing")?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top_mut(&mut self) -> Step<&mut Val> {
        self.stack
            .last_mut()
            .ok_or_else(|| "pickle stack underflow".into())
    }

    /// Adds `items` to the list or dict on top of the stack.
    fn extend_top(&mut self, items: Vec<Val>, pairs: bool) -> Step<()> {
        let top = self.top_mut()?;
        let node = Rc::make_mut(&mut top.0);
        for item in &items {
            node.depth = node.depth.max(item.0.depth + 1);
            node.nodes = node.nodes.saturating_add(item.0.nodes);
        }
        check_size(node.depth, node.nodes)?;
        match (&mut node.kind, pairs) {
            (Kind::Seq(list), false) => list.extend(items),
            (Kind::Dict(dict), true) => {
                if !items.len().is_multiple_of(2) {
                    return Err("a pickle SETITEMS has an odd number of items".into());
                }
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    dict.push((k, v));
                }
            }
            // a set, or an object filled through APPENDS: nothing to track
            (Kind::Object(_) | Kind::Leaf, _) => {}
            _ => return Err("a pickle APPEND/SETITEM targets neither a list nor a dict".into()),
        }
        Ok(())
    }

    fn put(&mut self, index: u64) -> Step<()> {
        let top = self.stack.last().cloned().ok_or("pickle stack underflow")?;
        self.memo.insert(index, top);
        Ok(())
    }

    fn get(&mut self, index: u64) -> Step<()> {
        let value = self
            .memo
            .get(&index)
            .cloned()
            .ok_or_else(|| format!("the pickle reads memo slot {index}, never written"))?;
        self.stack.push(value);
        Ok(())
    }

    /// What calling `callable(*args)` gives, for the callables that make tensors.
    fn call(&mut self, callable: &Val, args: &Val) -> Step<Val> {
        let Kind::Global { module, name } = &callable.0.kind else {
            return Val::object(args.clone());
        };
        let items = args.items().unwrap_or(&[]);
        match (module.as_str(), name.as_str()) {
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => self.tensor(items),
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state")
                if !items.is_empty() =>
            {
                Ok(items[0].clone())
            }
            ("torch._tensor", "_rebuild_from_type_v2") if items.len() >= 3 => {
                let (func, inner) = (items[0].clone(), items[2].clone());
                self.call(&func, &inner)
            }
            ("collections", "OrderedDict") => {
                let mut pairs = Vec::new();
                if let Some(list) = items.first().and_then(Val::items) {
                    for pair in list {
                        if let Some([k, v]) = pair.items() {
                            pairs.push((k.clone(), v.clone()));
                        }
                    }
                }
                let probe = Val::parent(Kind::Leaf, pairs.iter().flat_map(|(k, v)| [k, v]))?;
                Ok(probe.with_kind(Kind::Dict(pairs)))
            }
            _ => Val::object(args.clone()),
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`.
    fn tensor(&mut self, args: &[Val]) -> Step<Val> {
        let [storage, offset, shape, stride, ..] = args else {
            return Err("a tensor in the pickle has fewer than 4 rebuild arguments".into());
        };
        let Kind::Storage {
            key,
            element_size,
            type_name,
            numel,
        } = &storage.0.kind
        else {
            return Err("a tensor in the pickle has no storage reference".into());
        };
        let element_size = element_size.ok_or_else(|| {
            format!("a tensor in the pickle has unknown storage type {type_name}")
        })?;
        let ints = |v: &Val, what: &str| -> Step<Vec<i64>> {
            v.items()
                .ok_or_else(|| format!("a tensor's {what} in the pickle is not a tuple"))?
                .iter()
                .map(|d| {
                    d.int()
                        .ok_or_else(|| format!("a tensor's {what} in the pickle is not integers"))
                })
                .collect()
        };
        self.tensors.push(PthTensor {
            key: key.clone(),
            element_size,
            storage_numel: *numel,
            offset: offset
                .int()
                .ok_or("a tensor's storage offset in the pickle is not an integer")?,
            shape: ints(shape, "shape")?,
            stride: ints(stride, "stride")?,
        });
        Ok(Val::leaf(Kind::Tensor(self.tensors.len() - 1)))
    }

    fn persistent(&mut self, pid: Val) -> Step<Val> {
        let Some(items) = pid.items() else {
            return Val::object(pid);
        };
        let is_storage =
            matches!(items.first().map(|v| &v.0.kind), Some(Kind::Str(s)) if s == "storage");
        if !is_storage || items.len() < 3 {
            return Val::object(pid);
        }
        let type_name = match &items[1].0.kind {
            Kind::Global { name, .. } | Kind::Str(name) => name.clone(),
            _ => return Err("a storage's type in the pickle is not a name".into()),
        };
        let key = match &items[2].0.kind {
            Kind::Str(s) => s.clone(),
            Kind::Int(i) => i.to_string(),
            _ => return Err("a storage's key in the pickle is not a string".into()),
        };
        Ok(Val::leaf(Kind::Storage {
            element_size: element_size(&type_name),
            type_name,
            key,
            numel: items.get(4).and_then(Val::int),
        }))
    }

    fn run(&mut self) -> Step<Val> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(format!("unknown pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    self.take(8)?;
                } // FRAME
                b'.' => return self.pop(),
                b'(' => self.stack.push(Val::leaf(Kind::Mark)),
                b')' | b']' => self.stack.push(Val::leaf(Kind::Seq(Vec::new()))),
                b'}' => self.stack.push(Val::leaf(Kind::Dict(Vec::new()))),
                0x8f => self.stack.push(Val::leaf(Kind::Leaf)), // EMPTY_SET
                b'N' | 0x88 | 0x89 => self.stack.push(Val::leaf(Kind::Leaf)),
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.stack.push(Val::leaf(Kind::Int(v.into())));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Val::leaf(Kind::Int(v.into())));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.stack.push(Val::leaf(Kind::Int(v.into())));
                }
                b'I' | b'L' => {
                    let line = self.line()?.trim_end_matches('L');
                    let v = match line {
                        "00" | "01" => Kind::Leaf,
                        _ => line.parse().map(Kind::Int).unwrap_or(Kind::Leaf),
                    };
                    self.stack.push(Val::leaf(v));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        u64::from(self.u8()?)
                    } else {
                        u64::try_from(i32::from_le_bytes(self.le()?))
                            .map_err(|_| "a negative LONG4 length in the pickle")?
                    };
                    let bytes = self.take(n)?;
                    let v = if n <= 8 {
                        let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
                        let mut buf = [if negative { 0xff } else { 0 }; 8];
                        buf[..bytes.len()].copy_from_slice(bytes);
                        Kind::Int(i64::from_le_bytes(buf))
                    } else {
                        Kind::Leaf
                    };
                    self.stack.push(Val::leaf(v));
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(Val::leaf(Kind::Leaf));
                }
                b'F' => {
                    self.line()?;
                    self.stack.push(Val::leaf(Kind::Leaf));
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?);
                    let v = self.text(n.into())?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()?;
                    let v = self.text(n.into())?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.le()?);
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                b'V' | b'S' => {
                    let line = self.line()?;
                    let s = line.trim_matches(|c| c == '\'' || c == '"').to_string();
                    self.stack.push(Val::leaf(Kind::Str(s)));
                }
                b'U' => {
                    let n = self.u8()?;
                    let v = self.text(n.into())?;
                    self.stack.push(v);
                }
                b'T' => {
                    let n = u32::from_le_bytes(self.le()?);
                    let v = self.text(n.into())?;
                    self.stack.push(v);
                }
                b'C' | b'B' | 0x8e | 0x96 => {
                    let n = match op {
                        b'C' => u64::from(self.u8()?),
                        b'B' => u64::from(u32::from_le_bytes(self.le()?)),
                        _ => u64::from_le_bytes(self.le()?),
                    };
                    self.take(n)?;
                    self.stack.push(Val::leaf(Kind::Leaf));
                }
                b'q' => {
                    let i = self.u8()?;
                    self.put(i.into())?;
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.le()?);
                    self.put(i.into())?;
                }
                b'p' => {
                    let i = self.line()?.parse().map_err(|_| "a bad PUT index")?;
                    self.put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    self.put(i)?;
                }
                b'h' => {
                    let i = self.u8()?;
                    self.get(i.into())?;
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.le()?);
                    self.get(i.into())?;
                }
                b'g' => {
                    let i = self.line()?.parse().map_err(|_| "a bad GET index")?;
                    self.get(i)?;
                }
                b't' | b'l' => {
                    let items = self.pop_mark()?;
                    let v = Val::seq(items)?;
                    self.stack.push(v);
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err("pickle stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let v = Val::seq(items)?;
                    self.stack.push(v);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Val::leaf(Kind::Dict(Vec::new())));
                    self.extend_top(items, true)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_top(vec![v], false)?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, false)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend_top(vec![k, v], true)?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, true)?;
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    let v = Val::seq(items)?;
                    self.stack.push(Val::object(v)?);
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.stack.last().cloned().ok_or("pickle stack underflow")?;
                    self.stack.push(top);
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.stack.push(Val::leaf(Kind::Global { module, name }));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Kind::Str(module), Kind::Str(name)) = (&module.0.kind, &name.0.kind)
                    else {
                        return Err("a pickle STACK_GLOBAL names no string".into());
                    };
                    let (module, name) = (module.clone(), name.clone());
                    self.stack.push(Val::leaf(Kind::Global { module, name }));
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.call(&callable, &args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    self.pop()?;
                    self.stack.push(Val::object(args)?);
                }
                0x92 => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    self.pop()?;
                    let v = Val::seq(vec![args, kwargs])?;
                    self.stack.push(Val::object(v)?);
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.pop()?;
                    let v = match obj.0.kind {
                        Kind::Tensor(_) | Kind::Dict(_) => obj,
                        _ => Val::object(Val::seq(vec![obj, state])?)?,
                    };
                    self.stack.push(v);
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(pid)?;
                    self.stack.push(v);
                }
                b'P' => {
                    let pid = self.line()?.to_string();
                    self.stack.push(Val::leaf(Kind::Str(pid)));
                }
                other => return Err(format!("unsupported pickle opcode 0x{other:02x}")),
            }
        }
    }
}

/// Names every tensor reachable from `root` by its dotted path (dict keys, sequence indices),
/// each shared object visited once.
fn name_tensors(root: &Val, count: usize) -> Vec<Option<String>> {
    let mut names = vec![None; count];
    let mut seen = HashSet::new();
    let mut todo = vec![(root.clone(), String::new())];
    let join = |path: &str, part: &str| {
        if path.is_empty() {
            part.to_string()
        } else {
            format!("{path}.{part}")
        }
    };
    while let Some((v, path)) = todo.pop() {
        if !seen.insert(Rc::as_ptr(&v.0)) {
            continue;
        }
        match &v.0.kind {
            Kind::Tensor(i) => {
                names[*i].get_or_insert(path);
            }
            Kind::Dict(pairs) => {
                for (k, value) in pairs.iter().rev() {
                    let key = match &k.0.kind {
                        Kind::Str(s) => s.clone(),
                        Kind::Int(i) => i.to_string(),
                        _ => "?".to_string(),
                    };
                    todo.push((value.clone(), join(&path, &key)));
                }
            }
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    todo.push((item.clone(), join(&path, &i.to_string())));
                }
            }
            Kind::Object(args) => todo.push((args.clone(), path)),
            _ => {}
        }
    }
    names
}

/// The bytes a contiguous tensor needs from the start of its storage, or why it cannot be read
/// as `burn-store` reads it (row-major, from the offset).
fn needed_bytes(t: &PthTensor) -> std::result::Result<u64, TensorDamage> {
    let malformed = |reason: String| TensorDamage::Malformed { reason };
    let to_u64 = |v: i64, what: &str| {
        u64::try_from(v).map_err(|_| malformed(format!("its {what} is negative ({v})")))
    };
    let shape: Vec<u64> = t
        .shape
        .iter()
        .map(|&d| to_u64(d, "shape"))
        .collect::<std::result::Result<_, _>>()?;
    let stride: Vec<u64> = t
        .stride
        .iter()
        .map(|&s| to_u64(s, "stride"))
        .collect::<std::result::Result<_, _>>()?;
    if shape.len() != stride.len() {
        return Err(malformed(format!(
            "its shape {shape:?} and strides {stride:?} differ in rank"
        )));
    }
    let overflow = || malformed("its size overflows".into());
    let numel = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or_else(overflow)?;
    // row-major strides, ignoring dimensions of size 1 (PyTorch's own contiguity rule)
    let mut expected = 1u64;
    for (&d, &s) in shape.iter().zip(&stride).rev() {
        if d != 1 && s != expected && numel != 0 {
            return Err(TensorDamage::NonContiguous {
                shape: shape.iter().map(|&d| d as usize).collect(),
                stride: stride.iter().map(|&s| s as usize).collect(),
            });
        }
        expected = expected.saturating_mul(d);
    }
    let offset = to_u64(t.offset, "storage offset")?;
    let elements = offset.checked_add(numel).ok_or_else(overflow)?;
    let declared = match t.storage_numel {
        Some(n) => to_u64(n, "storage size")?,
        None => 0,
    };
    elements
        .max(declared)
        .checked_mul(t.element_size)
        .ok_or_else(overflow)
}

/// Reads an archive entry to its end without keeping it, so that the zip reader checks its
/// length and CRC; returns the bytes read.
fn read_through<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    index: usize,
) -> std::result::Result<u64, String> {
    let mut entry = archive.by_index(index).map_err(|e| e.to_string())?;
    let declared = entry.size();
    let read = std::io::copy(&mut entry, &mut std::io::sink()).map_err(|e| e.to_string())?;
    // burn-store allocates the declared size up front: it must be the real one
    if read != declared {
        return Err(format!(
            "the archive declares {declared} bytes, but {read} are there"
        ));
    }
    Ok(read)
}

/// Checks that every tensor of the PyTorch checkpoint at `path` has its whole storage in the
/// archive, readable, and is laid out as `burn-store` reads it. `top_level_key`: the tensors'
/// names are given relative to this dict key when the pickle has it (`"model"`).
pub(crate) fn check_storages(path: &Path, top_level_key: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidWeights {
        path: path.to_path_buf(),
        format: "PyTorch",
        reason,
    };
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
        invalid(format!(
            "not a zip archive ({e}); only the zip format of torch.save (PyTorch 1.6 and later) is read"
        ))
    })?;
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| invalid(format!("unreadable entry name: {e}")))?;
    // the pickle, found as burn-store finds it
    let pickle_name = ["data.pkl", "archive/data.pkl"]
        .into_iter()
        .find(|p| names.iter().any(|n| n == p))
        .map(str::to_string)
        .or_else(|| names.iter().find(|n| n.ends_with("data.pkl")).cloned())
        .ok_or_else(|| invalid("the archive has no data.pkl".into()))?;
    let pickle = {
        let mut entry = archive
            .by_name(&pickle_name)
            .map_err(|e| invalid(format!("cannot read {pickle_name}: {e}")))?;
        if entry.size() > MAX_PICKLE_BYTES {
            return Err(invalid(format!(
                "{pickle_name} is larger than {MAX_PICKLE_BYTES} bytes"
            )));
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MAX_PICKLE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| invalid(format!("cannot read {pickle_name}: {e}")))?;
        if bytes.len() as u64 > MAX_PICKLE_BYTES {
            return Err(invalid(format!(
                "{pickle_name} is larger than {MAX_PICKLE_BYTES} bytes"
            )));
        }
        bytes
    };
    let folder = pickle_name.strip_suffix("data.pkl").unwrap_or("");
    let mut machine = Machine::new(&pickle);
    let root = machine
        .run()
        .map_err(|e| invalid(format!("{pickle_name}: {e}")))?;
    let tensor_names = name_tensors(&root, machine.tensors.len());
    let prefix = format!("{top_level_key}.");
    let keyed = !machine.tensors.is_empty()
        && tensor_names
            .iter()
            .flatten()
            .any(|n| n.starts_with(&prefix));

    // storage entries as burn-store resolves them: `data/<key>`, else the first entry under a
    // `…/data/` folder whose last part is the key
    let data_files: Vec<(usize, &String)> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| (n.starts_with("data/") || n.contains("/data/")) && !n.ends_with(".pkl"))
        .filter(|(_, n)| !n.ends_with('/'))
        .collect();
    let resolve = |key: &str| -> Option<(usize, String)> {
        let exact = format!("data/{key}");
        if let Some(i) = names.iter().position(|n| *n == exact) {
            return Some((i, exact));
        }
        let suffix = format!("/data/{key}");
        data_files
            .iter()
            .find(|(_, n)| {
                n.ends_with(&suffix) || (n.contains("/data/") && n.rsplit('/').next() == Some(key))
            })
            .map(|&(i, n)| (i, n.clone()))
    };
    let mut read_sizes: HashMap<usize, std::result::Result<u64, String>> = HashMap::new();
    for (i, tensor) in machine.tensors.iter().enumerate() {
        let name = match &tensor_names[i] {
            Some(n) if keyed => n.strip_prefix(&prefix).unwrap_or(n).to_string(),
            Some(n) => n.clone(),
            None => format!("<unnamed tensor #{i}>"),
        };
        let damaged = |problem: TensorDamage| Error::DamagedTensor {
            path: path.to_path_buf(),
            name: name.clone(),
            problem,
        };
        let needed = needed_bytes(tensor).map_err(damaged)?;
        let Some((index, entry)) = resolve(&tensor.key) else {
            return Err(damaged(TensorDamage::MissingStorage {
                entry: format!("{folder}data/{}", tensor.key),
            }));
        };
        let found = read_sizes
            .entry(index)
            .or_insert_with(|| read_through(&mut archive, index))
            .clone()
            .map_err(|reason| {
                damaged(TensorDamage::UnreadableStorage {
                    entry: entry.clone(),
                    reason,
                })
            })?;
        if found < needed {
            return Err(damaged(TensorDamage::ShortStorage {
                entry,
                needed,
                found,
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pickle: &[u8]) -> Step<(Val, Vec<PthTensor>)> {
        let mut m = Machine::new(pickle);
        let root = m.run()?;
        Ok((root, m.tensors))
    }

    #[test]
    fn nesting_and_tree_size_are_bounded() {
        // 100 nested lists: deeper than MAX_DEPTH
        let mut deep = vec![0x80, 2];
        deep.extend(std::iter::repeat_n(b']', 100));
        deep.extend(std::iter::repeat_n(b'a', 99));
        deep.push(b'.');
        let err = run(&deep).unwrap_err();
        assert!(err.contains("nests deeper"), "{err}");

        // x = [[]]; then 30 times x = (x, x) through the memo: 2^30 nodes as a tree
        let mut wide = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..30 {
            wide.extend([b'h', 0, b'h', 0, 0x86, b'q', 0]);
        }
        wide.push(b'.');
        let err = run(&wide).unwrap_err();
        assert!(err.contains("nodes"), "{err}");
    }

    #[test]
    fn truncated_and_unknown_pickles_are_errors() {
        assert!(run(&[0x80, 2, b'X', 10, 0, 0, 0, b'a']).is_err());
        assert!(run(&[0x80, 2, 0xff]).is_err());
        assert!(run(&[0x80, 2, b'h', 7, b'.']).is_err());
        assert!(run(&[0x80, 2]).is_err());
    }

    #[test]
    fn strides_offsets_and_overflow() {
        let t = |shape: Vec<i64>, stride: Vec<i64>, offset: i64| PthTensor {
            key: "0".into(),
            element_size: 4,
            storage_numel: None,
            offset,
            shape,
            stride,
        };
        assert_eq!(needed_bytes(&t(vec![3, 4], vec![4, 1], 2)), Ok(56));
        assert_eq!(needed_bytes(&t(vec![1, 4], vec![99, 1], 0)), Ok(16));
        assert!(matches!(
            needed_bytes(&t(vec![3, 4], vec![1, 3], 0)),
            Err(TensorDamage::NonContiguous { .. })
        ));
        assert!(matches!(
            needed_bytes(&t(vec![3, -4], vec![4, 1], 0)),
            Err(TensorDamage::Malformed { .. })
        ));
        assert!(matches!(
            needed_bytes(&t(vec![1 << 40, 1 << 40], vec![1 << 40, 1], 0)),
            Err(TensorDamage::Malformed { .. })
        ));
        assert!(matches!(
            needed_bytes(&t(vec![4], vec![1], -1)),
            Err(TensorDamage::Malformed { .. })
        ));
    }
}
