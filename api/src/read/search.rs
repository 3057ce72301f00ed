//! Search over the catalogue (`q=` on the event lists): the search text as the lists accept it,
//! and which field a hit matched. The query itself is [`super::events::list`]'s, so every list
//! searches the same way; how it matches and ranks is described on [`Search`].

use crate::domain::text_enum;
use crate::problem::Problem;

/// The longest search text accepted, in characters.
pub const MAX_CHARS: usize = 200;

text_enum!(
    /// The field of an event a search matched: an exact id says `id`; otherwise the first of
    /// `name`, `venue`, `type`, `id` that contains the text or all its words, and when the
    /// words are spread over several fields, the field most like the text (trigram word
    /// similarity).
    pub enum MatchedField {
        Name => "name",
        Venue => "venue",
        Type => "type",
        Id => "id",
    }
);

/// A search text: trimmed, 1 to [`MAX_CHARS`] characters, no NUL. It is only ever bound as a
/// parameter. An event matches when its id is the text (any case), when a field contains the
/// text (`ILIKE`, with `%`, `_` and `\` taken literally; partial words such as `서울` in
/// `서울국제도서전` or `conf` in `Conference`; a trigram index serves it), or when its fields
/// hold all the text's words (full-text search, configuration `simple`, so Korean and English
/// alike). Hits rank by an exact id first, then full-text rank (name words weigh more than
/// venue, type, id), then trigram word similarity, then id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search(String);

impl Search {
    /// The search a `q` parameter asks for: `None` when absent or blank (no filter).
    pub fn parse(q: Option<&str>) -> Result<Option<Self>, Problem> {
        let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) else {
            return Ok(None);
        };
        let chars = q.chars().count();
        if chars > MAX_CHARS {
            return Err(Problem::bad_query(format!(
                "q: at most {MAX_CHARS} characters, got {chars}"
            )));
        }
        if q.contains('\0') {
            return Err(Problem::bad_query("q: NUL characters are not allowed"));
        }
        Ok(Some(Self(q.to_owned())))
    }

    pub fn text(&self) -> &str {
        &self.0
    }

    /// The `ILIKE` pattern of "contains the text": its wildcards and escape character taken
    /// literally (backslash is `LIKE`'s default escape).
    pub fn pattern(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + 2);
        out.push('%');
        for c in self.0.chars() {
            if matches!(c, '%' | '_' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('%');
        out
    }
}

/// Refuses a database whose character classes would break search. pg_trgm builds trigrams
/// from letters and digits only, and under the `C` or `POSIX` ctype no Korean character is a
/// letter: Korean text would have no trigrams (no similarity, an index that cannot narrow).
/// Checked at the API's start by asking pg_trgm itself, since the answer also depends on the
/// locale provider and version.
pub async fn check_database(pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
    use anyhow::Context;
    let client = pool.get().await.context("connecting to PostgreSQL")?;
    let row = client
        .query_one(
            "SELECT datname::text, datctype::text, pg_encoding_to_char(encoding)::text,
                    show_trgm('서울') <> '{}' AS trigrams
             FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .context("reading the database's locale (is the pg_trgm extension installed?)")?;
    match unsearchable(row.get(1), row.get(2), row.get(3)) {
        None => Ok(()),
        Some(why) => anyhow::bail!(
            "database {}: {why}; create it with ENCODING 'UTF8' LC_CTYPE 'C.UTF-8' \
             TEMPLATE template0 (scripts/services.sh does)",
            row.get::<_, String>(0)
        ),
    }
}

/// Why a database of `ctype` and `encoding` cannot search Korean, if it cannot (`trigrams`:
/// whether pg_trgm found any in Korean text).
fn unsearchable(ctype: &str, encoding: &str, trigrams: bool) -> Option<String> {
    if encoding != "UTF8" {
        return Some(format!("encoding {encoding} is not UTF8"));
    }
    (!trigrams).then(|| {
        format!("its LC_CTYPE {ctype} leaves Korean out of pg_trgm's trigrams, so search cannot match partial Korean words")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_no_search_and_long_is_refused() {
        assert_eq!(Search::parse(None).unwrap(), None);
        assert_eq!(Search::parse(Some("  ")).unwrap(), None);
        let s = Search::parse(Some(" 서울 ")).unwrap().unwrap();
        assert_eq!(s.text(), "서울");
        let at_cap = "가".repeat(MAX_CHARS);
        assert!(Search::parse(Some(&at_cap)).unwrap().is_some());
        let over = format!("{at_cap}a");
        let refused = Search::parse(Some(&over)).unwrap_err();
        assert_eq!(refused.status, 400);
        assert!(refused.detail.unwrap().contains("201"));
        assert_eq!(Search::parse(Some("a\0b")).unwrap_err().status, 400);
    }

    #[test]
    fn a_c_ctype_or_another_encoding_is_refused() {
        assert_eq!(unsearchable("C.UTF-8", "UTF8", true), None);
        assert!(
            unsearchable("C", "UTF8", false)
                .unwrap()
                .contains("LC_CTYPE C")
        );
        assert!(
            unsearchable("C", "SQL_ASCII", false)
                .unwrap()
                .contains("SQL_ASCII")
        );
    }

    #[test]
    fn wildcards_are_literal_in_the_pattern() {
        let s = |q| Search::parse(Some(q)).unwrap().unwrap().pattern();
        assert_eq!(s("conf"), "%conf%");
        assert_eq!(s("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }
}
