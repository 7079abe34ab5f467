// RenderCommand.swift: `hearth-operator render -f FILE` (every object the operator would apply) and `crds` (the
// CustomResourceDefinitions generated from the Swift types).

import ArgumentParser
import Foundation
import HearthAPI
import HearthOperator
import KubeModel

struct CRDs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crds",
        abstract: "Write the CustomResourceDefinitions generated from the Swift types."
    )

    @Option(name: .shortAndLong, help: "Directory to write to ('-' prints to stdout).")
    var output: String = "crds"

    func run() throws {
        let yaml = YAMLRendering.document(ProfilingTarget.customResourceDefinition.json)
        if self.output == "-" {
            print(yaml, terminator: "")
            return
        }
        try FileManager.default.createDirectory(atPath: self.output, withIntermediateDirectories: true)
        let path = self.output + "/" + ProfilingTarget.crdFileName
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        print("wrote \(path)")
    }
}

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract:
            "Print every object the operator would apply for the ProfilingTargets in a file (secret values redacted)."
    )

    @Option(
        name: .short,
        help: "A YAML file with ProfilingTargets (and the Secrets and Services they reference); '-' reads stdin."
    )
    var file: String

    @Option(help: "Namespace for objects without one.")
    var defaultNamespace: String = "default"

    @OptionGroup var agent: AgentOptions

    func run() throws {
        let data: Data
        if self.file == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let contents = FileManager.default.contents(atPath: self.file) else {
                throw ValidationError("cannot read \(self.file)")
            }
            data = contents
        }
        let output = try ManifestRenderer.render(
            yaml: String(decoding: data, as: UTF8.self),
            configuration: try self.agent.operatorConfiguration(),
            defaultNamespace: self.defaultNamespace
        )
        print(output, terminator: "")
    }
}
