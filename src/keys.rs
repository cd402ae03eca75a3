//! The server key file beside the database (`<DATABASE_PATH>.key`): 64 random bytes, created on first
//! start with mode 0600, that key the code HMAC and the sealed codes. A database copied without its
//! key reveals no code; losing the key only stops unfinished requests from resuming.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use actors::code_vault::{CodeVault, KEY_MATERIAL_LEN};

/// Where the key for a database lives.
pub fn key_path(database_path: &Path) -> PathBuf {
    let mut name = database_path.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Loads the key, creating it atomically (write to a temp file, then rename) if it does not exist.
pub fn load_or_create(database_path: &Path) -> anyhow::Result<[u8; KEY_MATERIAL_LEN]> {
    let path = key_path(database_path);
    match fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|_| {
            anyhow::anyhow!(
                "{}: key file must be exactly {KEY_MATERIAL_LEN} bytes",
                path.display()
            )
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let material = CodeVault::generate_material()?;
            let tmp = path.with_extension("key.tmp");
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options
                .open(&tmp)
                .map_err(|e| anyhow::anyhow!("{}: cannot create key file: {e}", tmp.display()))?;
            file.write_all(&material)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            tracing::info!(path = %path.display(), "created server key file");
            Ok(material)
        }
        Err(err) => Err(anyhow::anyhow!(
            "{}: cannot read key file: {err}",
            path.display()
        )),
    }
}
