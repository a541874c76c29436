# shellcheck shell=bash
install_kube_apiserver() { :; }
