// Cgroups.swift: from the cgroup id the BPF program records to a container. On cgroup v2 a cgroup's id is the
// inode number of its folder on the cgroup2 mount, so walking that tree maps every container's cgroup (and the
// cgroups nested below it) to its id. Container ids come from folder names, whose shape depends on the runtime
// (containerd, CRI-O, docker) and the kubelet's cgroup driver (systemd, cgroupfs).

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A container runtime's id for a container: 64 lowercase hex digits.
public struct ContainerID: Hashable, Sendable, CustomStringConvertible {
    public let value: String

    public init?(_ value: some StringProtocol) {
        guard value.utf8.count == 64, value.utf8.allSatisfy({ Self.isHex($0) }) else { return nil }
        self.value = String(value)
    }

    public var description: String { self.value }

    static func isHex(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
            || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
    }

    /// The id in a pod's `status.containerStatuses[].containerID` (`containerd://ID`, `cri-o://ID`,
    /// `docker://ID`).
    public init?(podStatusID: String) {
        guard let separator = podStatusID.range(of: "://") else { return nil }
        self.init(podStatusID[separator.upperBound...])
    }

    /// The id a cgroup folder's name carries, for the layouts the kubelet and the runtimes create:
    /// - systemd driver: `cri-containerd-ID.scope`, `crio-ID.scope`, `docker-ID.scope`
    /// - cgroupfs driver: `ID` (containerd, docker, CRI-O)
    /// CRI-O's monitor (`crio-conmon-ID.scope`) is not the container and yields nil.
    public init?(cgroupFolderName name: some StringProtocol) {
        var name = Substring(name)
        if name.hasSuffix(".scope") { name = name.dropLast(".scope".count) }
        if name.utf8.count == 64 {
            self.init(name)
            return
        }
        guard name.utf8.count > 65, !name.hasPrefix("crio-conmon-") else { return nil }
        let id = name.suffix(64)
        guard name.dropLast(64).last == "-" else { return nil }
        self.init(id)
    }

    /// The container of a `/proc/PID/cgroup` file: the deepest path segment that names one, from the cgroup v2
    /// line (`0::/…`) when there is one, else from any v1 line.
    public init?(procCgroup text: String) {
        let lines = text.split(separator: "\n")
        let unified = lines.filter { $0.hasPrefix("0::") }
        for line in unified + lines {
            guard let path = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).last else {
                continue
            }
            for segment in path.split(separator: "/").reversed() {
                if let id = ContainerID(cgroupFolderName: segment) {
                    self = id
                    return
                }
            }
        }
        return nil
    }
}

/// Where the cgroup2 hierarchy is mounted.
public enum CgroupMount {
    /// The cgroup2 root below `root` (`/sys/fs/cgroup` on pure v2 hosts, `/sys/fs/cgroup/unified` on hybrid
    /// hosts), or nil when there is none.
    public static func unifiedRoot(under root: String = "/sys/fs/cgroup") -> String? {
        // Only a cgroup2 folder has cgroup.controllers; the tmpfs holding v1 mounts on hybrid hosts does not.
        for candidate in [root, root + "/unified"]
        where FileManager.default.fileExists(atPath: candidate + "/cgroup.controllers") {
            return candidate
        }
        return nil
    }

    /// The cgroup id of a folder on the cgroup2 mount: its inode number.
    public static func id(ofFolder path: String) -> UInt64? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return nil }
        return UInt64(info.st_ino)
    }
}

/// One walk of the cgroup2 tree: every container's cgroup ids (its own and those nested below it).
public struct CgroupSnapshot: Sendable, Equatable {
    /// Container → the ids of its cgroup and every cgroup below it.
    public var cgroups: [ContainerID: [UInt64]] = [:]
    /// Folders visited (for metrics and tests).
    public var foldersVisited = 0
    /// Container → its own cgroup (the folder that names it, not one nested below) and that folder's level in the
    /// cgroup2 tree (the root is level 0), for the in-kernel ancestor lookup.
    public var containerCgroups: [ContainerID: ContainerCgroup] = [:]
    /// Whether the walk stopped at its folder limit (cgroups deeper than its depth limit are not listed either):
    /// their samples still count under their container's cgroup, which the kernel finds as their ancestor.
    public var truncated = false

    public init(cgroups: [ContainerID: [UInt64]] = [:], foldersVisited: Int = 0) {
        self.cgroups = cgroups
        self.foldersVisited = foldersVisited
    }

    /// A container's own cgroup.
    public struct ContainerCgroup: Sendable, Equatable {
        public var id: UInt64
        public var level: Int
    }

    /// Walks `root` (a cgroup2 mount), at most `maxDepth` levels deep and `maxFolders` folders in all, so a
    /// pathological tree cannot stall the agent.
    public static func scan(root: String, maxDepth: Int = 16, maxFolders: Int = 50_000) -> CgroupSnapshot {
        var snapshot = CgroupSnapshot()
        var stack: [(path: String, depth: Int, container: ContainerID?)] = [(root, 0, nil)]
        while let (path, depth, inherited) = stack.popLast() {
            guard snapshot.foldersVisited < maxFolders else {
                snapshot.truncated = true
                break
            }
            snapshot.foldersVisited += 1
            let name = path.split(separator: "/").last ?? ""
            let container = inherited ?? (depth > 0 ? ContainerID(cgroupFolderName: name) : nil)
            if let container, let id = CgroupMount.id(ofFolder: path) {
                snapshot.cgroups[container, default: []].append(id)
                if inherited == nil { snapshot.containerCgroups[container] = ContainerCgroup(id: id, level: depth) }
            }
            guard depth < maxDepth, let directory = opendir(path) else { continue }
            defer { closedir(directory) }
            while let entry = readdir(directory) {
                guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
                let child = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if child == "." || child == ".." { continue }
                stack.append((path + "/" + child, depth + 1, container))
            }
        }
        return snapshot
    }
}

extension CgroupSnapshot {
    /// Adds another snapshot's containers (their ids are merged).
    public mutating func merge(_ other: CgroupSnapshot) {
        for (container, ids) in other.cgroups {
            self.cgroups[container] = Array(Set((self.cgroups[container] ?? []) + ids)).sorted()
        }
        self.containerCgroups.merge(other.containerCgroups) { mine, _ in mine }
        self.foldersVisited += other.foldersVisited
        self.truncated = self.truncated || other.truncated
    }

    /// The fallback for folder layouts the name rules do not know: the cgroup v2 path of any process whose
    /// `/proc/PID/cgroup` names one of `containers`, resolved to its id on the cgroup2 mount.
    public static func fromProc(
        containers: Set<ContainerID>,
        unifiedRoot: String,
        procRoot: String = "/proc"
    ) -> CgroupSnapshot {
        var snapshot = CgroupSnapshot()
        guard !containers.isEmpty, let entries = try? FileManager.default.contentsOfDirectory(atPath: procRoot) else {
            return snapshot
        }
        for entry in entries where entry.first?.isNumber == true {
            guard let text = try? String(contentsOfFile: "\(procRoot)/\(entry)/cgroup", encoding: .utf8),
                let line = text.split(separator: "\n").first(where: { $0.hasPrefix("0::") })
            else { continue }
            let path = line.dropFirst(3)
            guard let container = containers.first(where: { path.contains($0.value) }),
                let id = CgroupMount.id(ofFolder: unifiedRoot + path)
            else { continue }
            if !(snapshot.cgroups[container]?.contains(id) ?? false) {
                snapshot.cgroups[container, default: []].append(id)
            }
            // The process's own cgroup stands for the container (it may be nested; the shallowest one wins).
            let level = path.split(separator: "/").count
            if (snapshot.containerCgroups[container]?.level ?? .max) > level {
                snapshot.containerCgroups[container] = CgroupSnapshot.ContainerCgroup(id: id, level: level)
            }
        }
        return snapshot
    }
}
