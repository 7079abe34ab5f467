// EmbeddedText.swift: the type of the text templates the build embeds from `Templates/` (the generated
// extensions add one static property per file), decoded on first use.

import FoundationEssentials

/// A text file from `Sources/HearthProfile/Templates`, embedded by the package build.
struct EmbeddedText: Sendable {
    /// The file's name without extension.
    let name: String
    private let base64: String

    init(name: String, base64: String) {
        self.name = name
        self.base64 = base64
    }

    /// The file's text.
    var text: String {
        // The literal comes from the build; failing to decode it would be a build bug, not a runtime error.
        guard let data = Data(base64Encoded: self.base64) else {
            fatalError("embedded template \(self.name) is not valid base64")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
