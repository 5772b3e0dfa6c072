//! Reading `--proto` files (and what they import) for `protox`, bounded (issue #25): each file
//! is read through `take(MAX_PROTO_BYTES + 1)`, so `/dev/zero` or a huge file is refused after
//! [`MAX_PROTO_BYTES`] with an error naming the file and the cap; a file that does not parse is
//! reported by its path, line and column and the parser's reason, without echoing its content
//! (the token found is left out: it could be anything, control characters included).

use std::io::Read;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};

/// Largest `.proto` file read: a service's definitions are kilobytes.
pub const MAX_PROTO_BYTES: u64 = 4 << 20;

/// Why a `.proto` file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProtoFileError {
    #[error("{}: larger than the {} MiB cap (MAX_PROTO_BYTES); not read further", path.display(), MAX_PROTO_BYTES >> 20)]
    TooLarge { path: PathBuf },
    #[error("{}: not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error("{}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{}{at}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        /// `:line:column`, when the parser says where.
        at: String,
        reason: String,
    },
}

/// The resolver `protox` compiles with: `includes` searched in order, each file read under
/// the cap, then Google's well-known files.
pub fn resolver(includes: &[PathBuf]) -> ChainFileResolver {
    let mut chain = ChainFileResolver::new();
    for include in includes {
        chain.add(Capped(
            IncludeFileResolver::new(include.clone()),
            include.clone(),
        ));
    }
    chain.add(GoogleFileResolver::new());
    chain
}

/// An include folder whose files are read under [`MAX_PROTO_BYTES`].
struct Capped(IncludeFileResolver, PathBuf);

impl FileResolver for Capped {
    fn resolve_path(&self, path: &Path) -> Option<String> {
        self.0.resolve_path(path)
    }

    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        let path = self.1.join(name);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(protox::Error::file_not_found(name));
            }
            Err(reason) => return Err(protox::Error::new(Opening { path, reason })),
        };
        let source = read_capped(file, &path).map_err(protox::Error::new)?;
        File::from_source(name, &source)
            .map_err(|e| protox::Error::new(parse_error(&path, &source, &e)))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
struct Opening {
    path: PathBuf,
    reason: std::io::Error,
}

/// The text of `file` (at `path`), at most [`MAX_PROTO_BYTES`].
pub fn read_capped(file: impl Read, path: &Path) -> Result<String, ProtoFileError> {
    let mut bytes = Vec::new();
    let read = file.take(MAX_PROTO_BYTES + 1).read_to_end(&mut bytes);
    if bytes.len() as u64 > MAX_PROTO_BYTES {
        return Err(ProtoFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    read.map_err(|e| ProtoFileError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|_| ProtoFileError::NotText {
        path: path.to_path_buf(),
    })
}

/// A parse error of `source` (the file at `path`) by position and reason, without the token.
fn parse_error(path: &Path, source: &str, err: &protox::Error) -> ProtoFileError {
    let offset = err
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    let at = offset.map_or(String::new(), |offset| {
        let before = source.get(..offset.min(source.len())).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(":{line}:{column}")
    });
    let text = err.to_string();
    // "expected X, but found '<token>'": the token is the file's content.
    let reason = match text.find(", but found '") {
        Some(at) => format!("{}, but found something else", &text[..at]),
        None => text,
    };
    let mut shown = String::new();
    for c in reason.chars().take(200) {
        match c.is_control() {
            true => shown.extend(c.escape_debug()),
            false => shown.push(c),
        }
    }
    ProtoFileError::Parse {
        path: path.to_path_buf(),
        at,
        reason: shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_zero_and_huge_files_are_refused_by_name_and_cap() {
        let err = read_capped(std::io::repeat(0), Path::new("/dev/zero")).unwrap_err();
        let text = err.to_string();
        assert_eq!(
            text,
            "/dev/zero: larger than the 4 MiB cap (MAX_PROTO_BYTES); not read further"
        );
        let exactly = std::io::repeat(b' ').take(MAX_PROTO_BYTES);
        assert!(read_capped(exactly, Path::new("big.proto")).is_ok());
    }

    #[test]
    fn parse_errors_name_the_place_not_the_content() {
        let source = "syntax = \"proto3\";\nmessage M { \u{1b}[31mSECRET }\n";
        let err = File::from_source("x.proto", source).unwrap_err();
        let text = parse_error(Path::new("d/x.proto"), source, &err).to_string();
        assert!(text.starts_with("d/x.proto:2:"), "{text}");
        assert!(
            !text.contains("SECRET") && !text.contains('\u{1b}'),
            "{text}"
        );
    }
}
