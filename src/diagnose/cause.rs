//! The causes within a finding's kind, defined once: each rule's own enum
//! names its causes for the JSON (`cause`) and says what each means, and
//! `Cause` gathers the enums (in `diagnose`, which holds the rules), so that
//! `connleak explain`, the completions and the JSON know the same causes and
//! a new one cannot be left out. Only the two macros live here, so that the
//! rules may use one without a circle.

/// Defines a rule's cause enum: each variant with the name the JSON gives
/// it and what `connleak explain NAME` says of it.
macro_rules! cause_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[doc = $doc:literal])* $variant:ident = $json:literal: $about:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
        pub enum $name {
            $( $(#[doc = $doc])* #[serde(rename = $json)] $variant, )*
        }

        impl $name {
            /// Every cause of the kind.
            pub const ALL: &[$name] = &[$($name::$variant),*];

            /// Its name, as the JSON writes it.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $json,)* }
            }

            /// What it means and what to do, for `connleak explain`.
            pub fn about(self) -> &'static str {
                match self { $($name::$variant => $about,)* }
            }
        }
    };
}
pub(crate) use cause_enum;

/// Gathers the rules' cause enums into [`Cause`], each with its rule.
macro_rules! causes {
    ($( $variant:ident($inner:ty) of $rule:expr, )*) => {
        /// The specific cause within a finding's kind, each rule's own enum; the JSON
        /// names it in snake_case (`never_closed_after_eof`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
        #[serde(untagged)]
        pub enum Cause {
            $( $variant($inner), )*
        }

        $( impl From<$inner> for Cause {
            fn from(c: $inner) -> Cause {
                Cause::$variant(c)
            }
        } )*

        impl Cause {
            /// Every cause of every kind.
            pub fn all() -> impl Iterator<Item = Cause> {
                std::iter::empty()
                    $( .chain(<$inner>::ALL.iter().map(|&c| Cause::from(c))) )*
            }

            /// Its name, as the JSON writes it.
            pub fn name(self) -> &'static str {
                match self { $( Cause::$variant(c) => c.name(), )* }
            }

            /// What it means and what to do.
            pub fn about(self) -> &'static str {
                match self { $( Cause::$variant(c) => c.about(), )* }
            }

            /// The kind of finding it is a cause of.
            pub fn kind(self) -> &'static str {
                match self { $( Cause::$variant(_) => ($rule).kind, )* }
            }
        }
    };
}
pub(crate) use causes;

#[cfg(test)]
mod tests {
    use super::super::{Cause, cause_named as named};

    #[test]
    fn every_cause_has_a_name_its_json_uses_and_an_account() {
        for c in Cause::all() {
            let json = serde_json::to_string(&c).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", c.name()));
            assert!(c.about().len() > 40, "{}", c.name());
            assert_eq!(named(&c.name().to_uppercase()), Some(c));
        }
        assert_eq!(Cause::all().count(), 24);
    }
}
