#!/usr/bin/env bash
# Installs kubernetes-validate (pinned, with its dependencies) into .state/kubevalidate/venv:
# the Kubernetes schema validator the tests check contrib/kubernetes/ with. Offline afterwards:
# the schemas of every Kubernetes version ship inside the package.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../scripts/lib/pinned-venv.sh
source "$here/../scripts/lib/pinned-venv.sh"
pinned_venv kubevalidate "$here/requirements.lock"
