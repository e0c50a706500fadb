// The version `loom --version` prints and reports record.

/// Loom's version.
public enum Version {
    /// Semantic version of this build.
    public static let loom = "0.10.0"
}
