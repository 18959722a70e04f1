//! A restricted pickle interpreter for `torch.save(state_dict)` (protocol 2, as the official
//! `Wan2.*_VAE.pth` / `models_t5_umt5-xxl-enc-bf16.pth` are written; the few protocol-4
//! framing opcodes are accepted too). It never executes anything: it builds plain values
//! (ints, strings, tuples, lists, dicts) and recognises exactly the globals a state_dict
//! needs — `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `torch._utils._rebuild_parameter` and the `torch.*Storage` classes. Every other global,
//! every other callable under `REDUCE` and every other opcode is refused with an error that
//! names it. Tensors come out as [`TensorRef`]s (storage key, dtype, view); the bytes are
//! read by `pth.rs`.
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::safetensors::StDtype;

/// A refusal reason (the caller wraps it into `Error::Pickle` with the file path).
pub type PickleResult<T> = std::result::Result<T, String>;

/// A tensor as the pickle describes it: a strided view on a storage record.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// Record name under `<top>/data/`.
    pub storage_key: String,
    pub dtype: StDtype,
    /// Storage length in elements, as the persistent id states it.
    pub storage_numel: u64,
    /// View offset in elements.
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

/// The globals we accept (everything a state_dict needs, nothing else).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(StDtype),
}

fn resolve_global(module: &str, name: &str) -> PickleResult<Global> {
    let storage = |d| Ok(Global::Storage(d));
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Ok(Global::RebuildParameter),
        ("torch", "FloatStorage") => storage(StDtype::F32),
        ("torch", "HalfStorage") => storage(StDtype::F16),
        ("torch", "BFloat16Storage") => storage(StDtype::BF16),
        ("torch", "DoubleStorage") => storage(StDtype::F64),
        ("torch", "LongStorage") => storage(StDtype::I64),
        ("torch", "IntStorage") => storage(StDtype::I32),
        ("torch", "ShortStorage") => storage(StDtype::I16),
        ("torch", "CharStorage") => storage(StDtype::I8),
        ("torch", "ByteStorage") => storage(StDtype::U8),
        ("torch", "BoolStorage") => storage(StDtype::Bool),
        _ => Err(format!(
            "global `{module}.{name}` is not allowed (a state_dict only needs \
             collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage)"
        )),
    }
}

type Dict = Rc<RefCell<Vec<(Value, Value)>>>;

/// A pickled value. Containers are shared (`Rc`) like Python objects, so memo lookups are
/// cheap and mutation after memoisation is seen everywhere (as in Python).
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Tuple(Rc<[Value]>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Dict),
    Global(GlobalRef),
    Storage(Rc<(StDtype, String, u64)>),
    Tensor(Rc<TensorRef>),
}

/// Opaque handle to an accepted global.
#[derive(Debug, Clone, Copy)]
pub struct GlobalRef(Global);

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// Name of an opcode byte, for error messages (including the dangerous ones we refuse).
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'c' => "GLOBAL",
        0x93 => "STACK_GLOBAL",
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        b'R' => "REDUCE",
        b'b' => "BUILD",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        0x82..=0x84 => "EXT",
        b'S' | b'T' | b'U' => "STRING",
        b'V' => "UNICODE",
        b'I' | b'L' => "INT/LONG (text)",
        b'F' => "FLOAT (text)",
        b'B' | b'C' | 0x8e | 0x96 => "BYTES",
        b'p' | b'g' => "PUT/GET (text)",
        b'0' | b'1' | b'2' => "POP/DUP",
        0x8f..=0x91 => "SET",
        0x97 | 0x98 => "BUFFER",
        _ => "unknown",
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> PickleResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| format!("truncated pickle at byte {}", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> PickleResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> PickleResult<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().map_err(|_| "u16")?,
        ))
    }
    fn u32(&mut self) -> PickleResult<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "u32")?,
        ))
    }
    fn line(&mut self) -> PickleResult<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .take(256)
            .position(|&b| b == b'\n')
            .ok_or("GLOBAL name is not a short newline-terminated line")?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| "GLOBAL name is not UTF-8")?;
        self.pos += n + 1;
        Ok(s)
    }
    fn utf8(&mut self, n: usize) -> PickleResult<Rc<str>> {
        let b = self.take(n)?;
        Ok(Rc::from(
            std::str::from_utf8(b).map_err(|_| "string is not UTF-8")?,
        ))
    }
}

struct Machine {
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

/// A state_dict pickle needs a stack a few entries deep and one memo entry per object;
/// these caps stop a hostile pickle from growing memory without bound.
const MAX_STACK: usize = 1 << 20;
const MAX_MEMO: usize = 1 << 22;

impl Machine {
    fn check_limits(&self) -> PickleResult<()> {
        if self.stack.len() + self.marks.len() > MAX_STACK {
            return Err(format!("pickle stack deeper than {MAX_STACK} entries"));
        }
        if self.memo.len() > MAX_MEMO {
            return Err(format!("pickle memo larger than {MAX_MEMO} entries"));
        }
        Ok(())
    }
    fn pop(&mut self) -> PickleResult<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err("stack underflow".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }
    fn top(&self) -> PickleResult<&Value> {
        self.stack.last().ok_or_else(|| "stack underflow".into())
    }
    fn pop_mark(&mut self) -> PickleResult<Vec<Value>> {
        let m = self.marks.pop().ok_or("MARK missing")?;
        Ok(self.stack.split_off(m))
    }
    fn pop_n(&mut self, n: usize) -> PickleResult<Vec<Value>> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() < floor + n {
            return Err("stack underflow".into());
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }
    fn memo_put(&mut self, idx: u32) -> PickleResult<()> {
        let v = self.top()?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }
    fn memo_get(&mut self, idx: u32) -> PickleResult<()> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| format!("memo entry {idx} read before it was written"))?;
        self.stack.push(v);
        Ok(())
    }
}

/// Interpret a `data.pkl` and return its top-level value.
pub fn unpickle(data: &[u8]) -> PickleResult<Value> {
    let mut r = Reader { data, pos: 0 };
    let mut m = Machine {
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        m.check_limits()?;
        let at = r.pos;
        let op = r.u8()?;
        match op {
            0x80 => {
                let p = r.u8()?;
                if !(2..=5).contains(&p) {
                    return Err(format!("pickle protocol {p} is not supported"));
                }
            }
            0x95 => {
                r.take(8)?; // FRAME length: framing is irrelevant when the whole pickle is in memory
            }
            b'(' => m.marks.push(m.stack.len()),
            b'}' => m.stack.push(Value::Dict(Rc::default())),
            b']' => m.stack.push(Value::List(Rc::default())),
            b')' => m.stack.push(Value::Tuple(Rc::from(Vec::new()))),
            b'N' => m.stack.push(Value::None),
            0x88 => m.stack.push(Value::Bool(true)),
            0x89 => m.stack.push(Value::Bool(false)),
            b'K' => {
                let v = r.u8()?;
                m.stack.push(Value::Int(v as i64))
            }
            b'M' => {
                let v = r.u16()?;
                m.stack.push(Value::Int(v as i64))
            }
            b'J' => {
                let v = r.u32()? as i32;
                m.stack.push(Value::Int(v as i64))
            }
            0x8a => {
                // LONG1: little-endian two's complement of n bytes.
                let n = r.u8()? as usize;
                if n > 8 {
                    return Err(format!("LONG1 of {n} bytes does not fit in 64 bits"));
                }
                let b = r.take(n)?;
                let mut v: i64 = 0;
                for (i, &x) in b.iter().enumerate() {
                    v |= (x as i64) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                m.stack.push(Value::Int(v))
            }
            b'G' => {
                let b: [u8; 8] = r.take(8)?.try_into().map_err(|_| "BINFLOAT")?;
                m.stack.push(Value::Float(f64::from_be_bytes(b)))
            }
            b'X' => {
                let n = r.u32()? as usize;
                let s = r.utf8(n)?;
                m.stack.push(Value::Str(s))
            }
            0x8c => {
                let n = r.u8()? as usize;
                let s = r.utf8(n)?;
                m.stack.push(Value::Str(s))
            }
            b't' => {
                let items = m.pop_mark()?;
                m.stack.push(Value::Tuple(Rc::from(items)))
            }
            0x85..=0x87 => {
                let items = m.pop_n((op - 0x84) as usize)?;
                m.stack.push(Value::Tuple(Rc::from(items)))
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    m.pop_n(2)?
                } else {
                    m.pop_mark()?
                };
                if items.len() % 2 != 0 {
                    return Err("SETITEMS with an odd number of items".into());
                }
                let Value::Dict(d) = m.top()? else {
                    return Err(format!("SETITEM(S) on a {}", m.top()?.kind()));
                };
                let mut d = d.borrow_mut();
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    m.pop_n(1)?
                } else {
                    m.pop_mark()?
                };
                let Value::List(l) = m.top()? else {
                    return Err(format!("APPEND(S) on a {}", m.top()?.kind()));
                };
                l.borrow_mut().extend(items);
            }
            b'q' => {
                let i = r.u8()? as u32;
                m.memo_put(i)?
            }
            b'r' => {
                let i = r.u32()?;
                m.memo_put(i)?
            }
            0x94 => {
                let i = m.memo.len() as u32;
                m.memo_put(i)?
            }
            b'h' => {
                let i = r.u8()? as u32;
                m.memo_get(i)?
            }
            b'j' => {
                let i = r.u32()?;
                m.memo_get(i)?
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                let g = resolve_global(module, name)?;
                m.stack.push(Value::Global(GlobalRef(g)))
            }
            0x93 => {
                let v = m.pop_n(2)?;
                let (Value::Str(module), Value::Str(name)) = (&v[0], &v[1]) else {
                    return Err("STACK_GLOBAL on non-strings".into());
                };
                let g = resolve_global(module, name)?;
                m.stack.push(Value::Global(GlobalRef(g)))
            }
            b'Q' => {
                let pid = m.pop()?;
                m.stack.push(persistent_load(&pid)?)
            }
            b'R' => {
                let args = m.pop()?;
                let func = m.pop()?;
                m.stack.push(reduce(&func, &args)?)
            }
            b'b' => {
                // BUILD: only the state_dict's `_metadata` attribute on the OrderedDict.
                let _state = m.pop()?;
                if !matches!(m.top()?, Value::Dict(_)) {
                    return Err(format!(
                        "BUILD on a {} (only the OrderedDict's _metadata is accepted)",
                        m.top()?.kind()
                    ));
                }
            }
            b'.' => {
                let v = m.pop()?;
                return Ok(v);
            }
            _ => {
                return Err(format!(
                    "opcode 0x{op:02x} ({}) at byte {at} is not allowed in a state_dict pickle",
                    opcode_name(op)
                ));
            }
        }
    }
}

fn int(v: &Value, what: &str) -> PickleResult<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(format!("{what}: expected an int, got a {}", other.kind())),
    }
}

fn non_negative(v: &Value, what: &str) -> PickleResult<u64> {
    let i = int(v, what)?;
    u64::try_from(i).map_err(|_| format!("{what} is negative ({i})"))
}

/// `('storage', torch.XStorage, '<key>', '<location>', numel)`
fn persistent_load(pid: &Value) -> PickleResult<Value> {
    let Value::Tuple(t) = pid else {
        return Err(format!("persistent id is a {}, not a tuple", pid.kind()));
    };
    match &t[..] {
        [
            Value::Str(tag),
            Value::Global(GlobalRef(Global::Storage(dt))),
            Value::Str(key),
            Value::Str(_location),
            numel,
        ] if &**tag == "storage" => {
            let numel = non_negative(numel, "storage numel")?;
            Ok(Value::Storage(Rc::new((*dt, key.to_string(), numel))))
        }
        _ => Err("persistent id is not ('storage', torch.XStorage, key, location, numel)".into()),
    }
}

fn reduce(func: &Value, args: &Value) -> PickleResult<Value> {
    let Value::Global(GlobalRef(g)) = func else {
        return Err(format!("REDUCE on a {} (not a callable)", func.kind()));
    };
    let Value::Tuple(a) = args else {
        return Err(format!(
            "REDUCE arguments are a {}, not a tuple",
            args.kind()
        ));
    };
    match g {
        Global::OrderedDict if a.is_empty() => Ok(Value::Dict(Rc::default())),
        Global::OrderedDict => Err("OrderedDict(...) with arguments is not supported".into()),
        Global::RebuildTensorV2 => rebuild_tensor(a),
        Global::RebuildParameter => match &a[..] {
            [t @ Value::Tensor(_), ..] => Ok(t.clone()),
            _ => Err("_rebuild_parameter without a tensor".into()),
        },
        Global::Storage(_) => Err("REDUCE on a torch storage class is not allowed".into()),
    }
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata])`
fn rebuild_tensor(a: &[Value]) -> PickleResult<Value> {
    if a.len() < 4 {
        return Err(format!("_rebuild_tensor_v2 with {} arguments", a.len()));
    }
    let Value::Storage(s) = &a[0] else {
        return Err(format!(
            "_rebuild_tensor_v2: first argument is a {}",
            a[0].kind()
        ));
    };
    let ints = |v: &Value, what: &str| -> PickleResult<Vec<u64>> {
        let Value::Tuple(t) = v else {
            return Err(format!("_rebuild_tensor_v2: {what} is a {}", v.kind()));
        };
        t.iter().map(|x| non_negative(x, what)).collect()
    };
    let (dtype, key, numel) = (s.0, s.1.clone(), s.2);
    let offset = non_negative(&a[1], "storage offset")?;
    let shape = ints(&a[2], "size")?;
    let stride = ints(&a[3], "stride")?;
    if shape.len() != stride.len() {
        return Err(format!(
            "tensor on storage `{key}`: size {shape:?} and stride {stride:?} differ in rank"
        ));
    }
    Ok(Value::Tensor(Rc::new(TensorRef {
        storage_key: key,
        dtype,
        storage_numel: numel,
        offset,
        shape,
        stride,
    })))
}

/// Flatten a (possibly nested) dict of tensors into `(dotted key, tensor)` in pickle order.
pub fn flatten_state_dict(v: &Value) -> PickleResult<Vec<(String, TensorRef)>> {
    let Value::Dict(_) = v else {
        return Err(format!("top-level object is a {}, not a dict", v.kind()));
    };
    let mut out = Vec::new();
    let mut budget = 10_000_000usize;
    walk(v, "", 0, &mut out, &mut budget)?;
    Ok(out)
}

fn walk(
    v: &Value,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, TensorRef)>,
    budget: &mut usize,
) -> PickleResult<()> {
    if depth > 8 {
        return Err(format!("dict nesting deeper than 8 at `{prefix}`"));
    }
    let Value::Dict(d) = v else {
        unreachable!("walk is only called on dicts")
    };
    for (k, item) in d.borrow().iter() {
        *budget = budget
            .checked_sub(1)
            .ok_or("more than 10 million entries")?;
        let Value::Str(k) = k else {
            return Err(format!("key of kind {} under `{prefix}`", k.kind()));
        };
        let key = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        match item {
            Value::Tensor(t) => out.push((key, (**t).clone())),
            Value::Dict(_) => walk(item, &key, depth + 1, out, budget)?,
            other => return Err(format!("`{key}` is a {}, not a tensor", other.kind())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(body: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, 2];
        v.extend_from_slice(body);
        v.push(b'.');
        v
    }

    #[test]
    fn refuses_exec_global() {
        let p = proto(b"c__builtin__\nexec\n");
        let e = unpickle(&p).unwrap_err();
        assert!(e.contains("__builtin__.exec"), "{e}");
    }

    #[test]
    fn refuses_unknown_opcode_by_name() {
        let e = unpickle(&proto(b"}(o")).unwrap_err();
        assert!(e.contains("OBJ"), "{e}");
    }

    #[test]
    fn builds_ordered_dict_with_tensor() {
        // OrderedDict() ; SETITEM 'w' -> _rebuild_tensor_v2(pid(storage), 0, (2,3), (3,1))
        let mut b = Vec::new();
        b.extend_from_slice(b"ccollections\nOrderedDict\n)R");
        b.extend_from_slice(b"\x8c\x01w");
        b.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        b.extend_from_slice(b"(\x8c\x07storagectorch\nFloatStorage\n\x8c\x010\x8c\x03cpuK\x06tQ");
        b.extend_from_slice(b"K\x00K\x02K\x03\x86K\x03K\x01\x86\x89}tR");
        b.extend_from_slice(b"s}b");
        let v = unpickle(&proto(&b)).unwrap();
        let t = flatten_state_dict(&v).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].0, "w");
        assert_eq!(t[0].1.shape, vec![2, 3]);
        assert_eq!(t[0].1.stride, vec![3, 1]);
        assert_eq!(t[0].1.storage_numel, 6);
        assert_eq!(t[0].1.dtype, StDtype::F32);
    }

    /// `_rebuild_tensor_v2(storage '0' of `numel` floats, 0, shape, stride, False, {})`
    fn tensor(shape: &[u8], stride: &[u8], numel: u8) -> Vec<u8> {
        let mut b = b"ctorch._utils\n_rebuild_tensor_v2\n((\x8c\x07storagectorch\nFloatStorage\n\x8c\x010\x8c\x03cpuK".to_vec();
        b.push(numel);
        b.extend_from_slice(b"tQK\x00(");
        for &d in shape {
            b.extend_from_slice(&[b'K', d]);
        }
        b.extend_from_slice(b"t(");
        for &d in stride {
            b.extend_from_slice(&[b'K', d]);
        }
        b.extend_from_slice(b"t\x89}tR");
        b
    }

    #[test]
    fn nested_dicts_flatten_with_dotted_keys() {
        // {'model': {'w': T, 'sub': {'b': T}}, 'x': T}
        let mut b = b"}(\x8c\x05model}(\x8c\x01w".to_vec();
        b.extend(tensor(&[2], &[1], 2));
        b.extend_from_slice(b"\x8c\x03sub}\x8c\x01b");
        b.extend(tensor(&[2], &[1], 2));
        b.extend_from_slice(b"su\x8c\x01x");
        b.extend(tensor(&[1], &[1], 1));
        b.extend_from_slice(b"u");
        let v = unpickle(&proto(&b)).unwrap();
        let keys: Vec<String> = flatten_state_dict(&v)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["model.w", "model.sub.b", "x"]);
    }

    #[test]
    fn refuses_what_a_state_dict_never_needs() {
        // STACK_GLOBAL spelling of os.system
        let e = unpickle(&proto(b"\x8c\x02os\x8c\x06system\x93")).unwrap_err();
        assert!(e.contains("`os.system`"), "{e}");
        // calling a storage class
        let e = unpickle(&proto(b"ctorch\nFloatStorage\n)R")).unwrap_err();
        assert!(e.contains("storage class"), "{e}");
        // BUILD on anything but the dict
        let e = unpickle(&proto(b"K\x01}b")).unwrap_err();
        assert!(e.contains("BUILD on a int"), "{e}");
        // a dict value that is not a tensor
        let v = unpickle(&proto(b"}\x8c\x01aK\x01s")).unwrap();
        assert!(flatten_state_dict(&v).unwrap_err().contains("`a` is a int"));
        // negative sizes
        // (bounds of a view are pth.rs's business: the pickle itself is fine)
        assert!(unpickle(&proto(&tensor(&[0xff], &[1], 1))).is_ok());
        let e = unpickle(&proto(b"ctorch._utils\n_rebuild_tensor_v2\n((\x8c\x07storagectorch\nFloatStorage\n\x8c\x010\x8c\x03cpuK\x01tQJ\xff\xff\xff\xff)))tR")).unwrap_err();
        assert!(e.contains("negative"), "{e}");
    }

    #[test]
    fn truncated_and_underflow_are_errors() {
        assert!(unpickle(&[0x80, 2, b'X', 0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(unpickle(&proto(b"s")).is_err());
        assert!(unpickle(&proto(b"(t(u")).is_err());
        assert!(unpickle(&[]).is_err());
    }
}
