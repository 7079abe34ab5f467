// plugin.swift: the build tool plugin that embeds each file of a target's `Templates/` folder (the flame graph
// page) in a generated Swift file through `hearth-embed`, so templates live in the repository as what they are
// (HTML that editors and linters read) and still ship inside the binary.

import Foundation
import PackagePlugin

@main
struct TextEmbedPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let templates = target.directoryURL.appending(path: "Templates")
        let files = try FileManager.default.contentsOfDirectory(atPath: templates.path())
            .filter { !$0.hasPrefix(".") }
            .sorted()
        let embed = try context.tool(named: "hearth-embed").url
        return files.map { file in
            let name = String(file.prefix { $0 != "." })
            let input = templates.appending(path: file)
            let output = context.pluginWorkDirectoryURL.appending(path: "\(name)+Text.swift")
            return .buildCommand(
                displayName: "Embedding template \(file)",
                executable: embed,
                arguments: ["text", input.path(), output.path(), name],
                inputFiles: [input],
                outputFiles: [output]
            )
        }
    }
}
