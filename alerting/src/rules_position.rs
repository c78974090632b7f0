//! Where in a rule file a value sits, for error messages. `serde_yaml_ng::Value` (which rule
//! loading goes through, to resolve merge keys) keeps no positions, so when a rule is invalid the
//! file is read once more, up to that value, and the read fails there on purpose: serde_yaml_ng
//! gives the failure the value's line and column. Only failures pay for it.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path into a YAML document: a mapping key or a sequence index.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `(line, column)`, both 1-based, of the value at `path` in the first YAML document of `text`;
/// `None` when the path is not there as written (e.g. it comes from a merge key).
pub(crate) fn position(text: &str, path: &[Step]) -> Option<(usize, usize)> {
    let document = serde_yaml_ng::Deserializer::from_str(text).next()?;
    match Seek(path).deserialize(document) {
        Ok(()) => None,
        Err(e) => e.location().map(|l| (l.line(), l.column())),
    }
}

/// Walks `path`; at its end it refuses whatever value is there, which stamps the value's mark.
struct Seek<'p>(&'p [Step<'p>]);

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.0.split_first() {
            None => deserializer.deserialize_any(Refuse),
            Some((Step::Key(_), _)) => deserializer.deserialize_map(self),
            Some((Step::Index(_), _)) => deserializer.deserialize_seq(self),
        }
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a mapping or sequence on the path")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Step::Key(wanted), rest)) = self.0.split_first() else { return Ok(()) };
        while let Some(key) = map.next_key::<serde_yaml_ng::Value>()? {
            if key.as_str() == Some(wanted) {
                return map.next_value_seed(Seek(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Step::Index(wanted), rest)) = self.0.split_first() else { return Ok(()) };
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Seek(rest)).map(|_| ())
    }
}

/// A visitor that accepts nothing: every `visit_*` keeps serde's default "invalid type" error.
struct Refuse;

impl Visitor<'_> for Refuse {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("nothing (locating a value)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "groups:\n- name: a\n  rules:\n  - alert: X\n    expr: up == 0\n  - record: r:x\n    expr: |\n      sum(x)\n";

    #[test]
    fn finds_keys_and_items_by_line_and_column() {
        use Step::*;
        let at = |path: &[Step]| position(FILE, path);
        assert_eq!(at(&[Key("groups"), Index(0), Key("rules"), Index(0), Key("expr")]), Some((5, 11)));
        assert_eq!(at(&[Key("groups"), Index(0), Key("rules"), Index(1), Key("expr")]), Some((7, 11)));
        assert_eq!(at(&[Key("groups"), Index(0), Key("rules"), Index(1)]), Some((6, 5)));
        assert_eq!(at(&[Key("groups"), Index(0), Key("rules"), Index(2)]), None, "no third rule");
        assert_eq!(at(&[Key("groups"), Index(0), Key("nope")]), None);
    }

    #[test]
    fn an_alias_points_at_its_anchor() {
        let text = "x: &e up == 0\ngroups:\n- name: a\n  rules:\n  - alert: X\n    expr: *e\n";
        let path = [Step::Key("groups"), Step::Index(0), Step::Key("rules"), Step::Index(0), Step::Key("expr")];
        assert!(position(text, &path).is_some());
    }
}
