//! Form and query parameters, parsed the way RFC 6749 §3.1 asks: a parameter sent without a
//! value is treated as omitted, and a repeated parameter is an error.

/// Why parameters could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("parameter {0} is repeated")]
    Repeated(String),
    #[error("parameters must be valid UTF-8")]
    NotUtf8,
}

/// Decoded `name=value` pairs, in order.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(raw: &str) -> Result<Self, ParamsError> {
        let mut pairs = Vec::new();
        for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            // form_urlencoded decodes invalid UTF-8 lossily; refuse instead of guessing.
            if name.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
                return Err(ParamsError::NotUtf8);
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    /// The value of `name`, or `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Like [`Params::get`], but an error when `name` is given more than once.
    pub fn single(&self, name: &str) -> Result<Option<&str>, ParamsError> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(n, v)| n == name && !v.is_empty());
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(ParamsError::Repeated(name.to_owned()));
        }
        Ok(first)
    }

    /// The first parameter given more than once with a value, if any.
    pub fn duplicated(&self) -> Option<&str> {
        let present: Vec<&str> = self
            .pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, _)| n.as_str())
            .collect();
        present
            .iter()
            .enumerate()
            .find(|(i, name)| present[..*i].contains(name))
            .map(|(_, name)| *name)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_absent_and_repeats_are_found() {
        let params = Params::parse("a=1&b=&c=x%20y&a=2").unwrap();
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), None);
        assert_eq!(params.get("c"), Some("x y"));
        assert_eq!(params.duplicated(), Some("a"));
        assert_eq!(params.single("a"), Err(ParamsError::Repeated("a".into())));
        assert_eq!(params.single("c"), Ok(Some("x y")));
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert_eq!(Params::parse("a=%FF").unwrap_err(), ParamsError::NotUtf8);
    }
}
