#!/bin/sh
# First-boot script for Debian images whose /etc/network/interfaces names an interface
# the guest does not have (the image was made on another machine type): rename it to the
# guest's and bring it up. Use: virt-builder-args = --firstboot {scripts}/fixup-network-interfaces.sh
#
# The original virt-up's script of the same name (meffie/virt-up 1.4.0 and 2.2.0,
# Copyright (c) 2019-2021 Sine Nomine Associates, BSD licence), with $(...) for
# backquotes, plain test operands and its "Enable to detect" message corrected.
old_iface=$(awk '$1=="iface" && $2!="lo" && $3=="inet" {print $2}' /etc/network/interfaces | tail -1)
new_iface=$(ip -o -a link | awk '$2!="lo:" {print $2}' | tr -d : | tail -1)

echo "* Old interface is '$old_iface'."
echo "* New interface is '$new_iface'."

if test -z "$new_iface"; then
    echo "* Unable to detect primary interface." >&2
elif test "$old_iface" != "$new_iface"; then
    echo "* Changing '$old_iface' to '$new_iface' in '/etc/network/interfaces'."
    sed -i -e "s/$old_iface/$new_iface/" /etc/network/interfaces
    echo "* Bringing up interface '$new_iface'."
    ifup "$new_iface"
fi
