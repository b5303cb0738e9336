//! Reading variables: the small rules every variable follows, once. A blank value counts as
//! unset (a `.env` line `NAME=` means "use the default"), and every refusal names the variable
//! and the rule, never the value.

use std::ops::RangeInclusive;
use std::str::FromStr;

use super::ConfigError;

/// A source of variables (the process environment, or a map in tests).
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The value of `name`, or `None` when it is unset or blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    /// The value of `name`, which must be set.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// `parse` of the value of `name`, or `default` when it is unset.
    pub fn parsed_or<T>(
        &self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        self.optional(name)
            .map_or(Ok(default), |value| parse(&value))
    }

    /// A whole number from `range` in `name`, or `default` when it is unset; `rule` says
    /// what the number must be when it is not.
    pub fn number_in<T>(
        &self,
        name: &'static str,
        range: RangeInclusive<T>,
        default: T,
        rule: &str,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd,
    {
        self.parsed_or(name, default, |value| {
            value
                .trim()
                .parse::<T>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| ConfigError::new(name, rule))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_unset_and_numbers_keep_to_their_range() {
        let lookup = |name: &str| match name {
            "BLANK" => Some("  ".to_owned()),
            "TEN" => Some(" 10 ".to_owned()),
            _ => None,
        };
        let env = Env::new(&lookup);
        assert_eq!(env.optional("BLANK"), None);
        assert_eq!(
            env.required("BLANK").unwrap_err().to_string(),
            "BLANK is required but not set"
        );
        assert_eq!(env.number_in("TEN", 1..=10, 5, "must be 1-10"), Ok(10));
        assert_eq!(env.number_in("UNSET", 1..=10, 5, "must be 1-10"), Ok(5));
        let err = env.number_in("TEN", 1..=9, 5, "must be 1-9").unwrap_err();
        assert_eq!(err.to_string(), "TEN must be 1-9");
    }
}
