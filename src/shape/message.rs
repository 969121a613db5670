//! A const-fn text writer: shape errors are sentences assembled at compile time.

/// Capacity of one message; the longest designed message is well under it.
const CAPACITY: usize = 512;

/// A fixed-size text buffer that `const fn`s can write numbers and words into.
///
/// Stable Rust cannot format in const context, so shape checks build their
/// message here and hand it to [`Message::fail`], which panics with it during
/// constant evaluation: the panic becomes the compiler's error text.
///
/// # Shapes
/// Not a layer; it writes shapes as text, e.g. `(16, 4, 4)`.
///
/// ```
/// use shapesafe::shape::Message;
/// const M: Message = Message::new().text("Linear<").number(400).text(">");
/// assert_eq!(M.as_str(), "Linear<400>");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Message {
    bytes: [u8; CAPACITY],
    len: usize,
}

impl Message {
    /// An empty message.
    pub const fn new() -> Self {
        Self {
            bytes: [0; CAPACITY],
            len: 0,
        }
    }

    /// Appends `s`; text past the capacity is dropped rather than failing.
    pub const fn text(mut self, s: &str) -> Self {
        let src = s.as_bytes();
        let mut i = 0;
        while i < src.len() && self.len < CAPACITY {
            self.bytes[self.len] = src[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    /// Appends `n` in decimal.
    pub const fn number(mut self, mut n: usize) -> Self {
        let mut digits = [0u8; 20];
        let mut count = 0;
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while count > 0 && self.len < CAPACITY {
            count -= 1;
            self.bytes[self.len] = digits[count];
            self.len += 1;
        }
        self
    }

    /// Appends dims as a tuple: `(16, 4, 4)`, or `(10,)` for one dim.
    pub const fn dims(self, dims: &[usize]) -> Self {
        let mut m = self.text("(");
        let mut i = 0;
        while i < dims.len() {
            if i > 0 {
                m = m.text(", ");
            }
            m = m.number(dims[i]);
            i += 1;
        }
        if dims.len() == 1 {
            m = m.text(",");
        }
        m.text(")")
    }

    /// The text written so far.
    pub const fn as_str(&self) -> &str {
        let (written, _) = self.bytes.split_at(self.len);
        // Only whole `&str`s and ASCII digits are ever written, but a cut at
        // CAPACITY could split a multi-byte character: fall back to a plain text.
        match core::str::from_utf8(written) {
            Ok(s) => s,
            Err(_) => "shape mismatch (message not representable)",
        }
    }

    /// Stops constant evaluation with this message as the compiler error.
    pub const fn fail(&self) -> ! {
        panic!("{}", self.as_str())
    }
}

impl Default for Message {
    fn default() -> Self {
        Self::new()
    }
}
