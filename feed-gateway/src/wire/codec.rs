//! Field-level reading and writing shared by the message codecs.

use engine::{Fixed8, Symbol, UnixNanos};

use super::MessageError;

/// Reads big-endian fields from a message whose length was checked first.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Starts after the type byte.
    pub(crate) fn new(message: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes: message,
            at: 1,
        }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        // Callers check the message length before reading: the slice is in
        // bounds; a short one would read zeros rather than panic.
        if let Some(src) = self.bytes.get(self.at..self.at + N) {
            out.copy_from_slice(src);
        }
        self.at += N;
        out
    }

    pub(crate) fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }

    pub(crate) fn ts(&mut self) -> UnixNanos {
        UnixNanos(self.u64())
    }

    pub(crate) fn fixed8(&mut self) -> Result<Fixed8, MessageError> {
        let mantissa = i64::from_be_bytes(self.take());
        if mantissa == i64::MIN {
            return Err(MessageError::Fixed8Min);
        }
        Ok(Fixed8(mantissa))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, MessageError> {
        match self.u8() {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(MessageError::Bool(other)),
        }
    }

    pub(crate) fn symbol(&mut self) -> Result<Symbol, MessageError> {
        let bytes: [u8; 16] = self.take();
        if !bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(MessageError::SymbolNotPrintable);
        }
        if bytes.iter().all(|b| *b == b' ') {
            return Err(MessageError::SymbolEmpty);
        }
        Ok(Symbol(bytes))
    }

    /// The unread rest.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or(&[])
    }
}

/// Writes big-endian fields into a buffer whose length was checked first.
pub(crate) struct Writer<'a> {
    bytes: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut [u8], kind: u8) -> Writer<'a> {
        let mut writer = Writer { bytes: out, at: 0 };
        writer.u8(kind);
        writer
    }

    fn put(&mut self, src: &[u8]) {
        if let Some(dst) = self.bytes.get_mut(self.at..self.at + src.len()) {
            dst.copy_from_slice(src);
        }
        self.at += src.len();
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.put(&[value]);
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.put(&value.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.put(&value.to_be_bytes());
    }

    pub(crate) fn ts(&mut self, value: UnixNanos) {
        self.u64(value.0);
    }

    pub(crate) fn fixed8(&mut self, value: Fixed8) {
        self.put(&value.0.to_be_bytes());
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }

    pub(crate) fn symbol(&mut self, value: &Symbol) {
        self.put(&value.0);
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.at
    }
}
