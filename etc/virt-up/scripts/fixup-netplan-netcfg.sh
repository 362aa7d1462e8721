#!/bin/sh
# First-boot script for Ubuntu images whose /etc/netplan/01-netcfg.yaml names an interface
# the guest does not have: rename it to the guest's and apply. Use:
# virt-builder-args = --firstboot {scripts}/fixup-netplan-netcfg.sh
#
# The original virt-up's script of the same name (meffie/virt-up 1.4.0 and 2.2.0,
# Copyright (c) 2019-2021 Sine Nomine Associates, BSD licence), with $(...) for
# backquotes and plain test operands.
new_iface=$(ip -o -a link | awk '$2!="lo:" {print $2}' | tr -d : | tail -1)
echo "* New interface is '$new_iface'."
if test -z "$new_iface"; then
    echo "* Unable to detect primary interface." >&2
    exit 1
fi
echo "* Setting interface name to '$new_iface' in '/etc/netplan/01-netcfg.yaml'."
sed -i -e "s/^    en.*:/    $new_iface:/" /etc/netplan/01-netcfg.yaml
echo "* Bringing up interface '$new_iface'."
netplan apply
