# shellcheck shell=bash
install_terraform() { :; }
