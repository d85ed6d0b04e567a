//! Schema versions: which embedded migrations a database still needs, and the refusal to
//! run against a database migrated by a newer Herald (its tables may mean other things).

use crate::StoreError;

/// The migrations of `known` (version, description) not in `applied`, in order — or an
/// error naming both versions when the database is newer than this build.
pub fn pending(applied: &[i64], known: &[(i64, String)]) -> Result<Vec<(i64, String)>, StoreError> {
    let newest_known = known.iter().map(|m| m.0).max().unwrap_or(0);
    if let Some(&newest_applied) = applied.iter().max().filter(|&&v| v > newest_known) {
        return Err(StoreError::Misconfigured(format!(
            "the database schema is at version {newest_applied}, newer than this herald knows ({newest_known}): \
             run the newer herald that migrated it, or restore a backup made before the upgrade"
        )));
    }
    let mut out: Vec<(i64, String)> = known.iter().filter(|m| !applied.contains(&m.0)).cloned().collect();
    out.sort();
    Ok(out)
}

/// The refusal of a database that holds migration `version`, which this build lacks (a
/// newer Herald migrated it while this one was starting).
pub fn unknown_migration(version: i64) -> StoreError {
    StoreError::Misconfigured(format!(
        "the database has migration {version}, which this herald does not know (a newer herald migrated it): \
         run the newer herald, or restore a backup made before the upgrade"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<(i64, String)> {
        (1..=3).map(|v| (v, format!("m{v}"))).collect()
    }

    #[test]
    fn pending_lists_what_is_missing_and_refuses_a_newer_database() {
        assert_eq!(pending(&[], &known()).unwrap().len(), 3);
        assert_eq!(pending(&[1, 2], &known()).unwrap(), vec![(3, "m3".into())]);
        assert!(pending(&[1, 2, 3], &known()).unwrap().is_empty());
        let e = pending(&[1, 2, 3, 4], &known()).unwrap_err().to_string();
        assert!(e.contains("version 4") && e.contains("(3)"), "{e}");
    }
}
