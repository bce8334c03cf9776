//! Values parked under small integer tokens while JavaScript does their I/O: JS hands the
//! token back to one long-lived callback, instead of wasm making a closure per request.

/// A slab: tokens of taken values are handed out again.
pub struct Tokens<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Tokens<T> {
    fn default() -> Tokens<T> {
        Tokens::new()
    }
}

impl<T> Tokens<T> {
    pub const fn new() -> Tokens<T> {
        Tokens { slots: Vec::new(), free: Vec::new() }
    }

    /// Parks `value`; its token is valid until it is taken.
    pub fn insert(&mut self, value: T) -> u32 {
        match self.free.pop() {
            Some(token) => {
                self.slots[token as usize] = Some(value);
                token
            }
            None => {
                self.slots.push(Some(value));
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// The value parked under `token`, once: `None` for a token not handed out or already taken.
    pub fn take(&mut self, token: u32) -> Option<T> {
        let value = self.slots.get_mut(token as usize)?.take()?;
        self.free.push(token);
        Some(value)
    }

    /// Values parked now.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_is_taken_once_and_tokens_are_reused() {
        let mut tokens = Tokens::new();
        let (a, b) = (tokens.insert("a"), tokens.insert("b"));
        assert_ne!(a, b);
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens.take(a), Some("a"));
        assert_eq!(tokens.take(a), None, "taken once");
        assert_eq!(tokens.take(99), None, "never handed out");
        let c = tokens.insert("c");
        assert_eq!(c, a, "a free token is handed out again");
        assert_eq!((tokens.take(b), tokens.take(c)), (Some("b"), Some("c")));
        assert!(tokens.is_empty());
        // Many in flight at once, taken in any order.
        let many: Vec<u32> = (0..100).map(|i| tokens.insert(if i % 2 == 0 { "even" } else { "odd" })).collect();
        for token in many.iter().rev() {
            assert!(tokens.take(*token).is_some());
        }
        assert!(tokens.is_empty());
        assert!(many.iter().all(|t| (*t as usize) < 100), "no slot beyond the most ever in flight");
    }
}
