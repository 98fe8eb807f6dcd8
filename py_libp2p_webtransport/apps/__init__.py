"""What browsers come for, on the Python side: gossip, file upload and file fetch (issue 8).

These sit on top of a py-libp2p host that uses our transport; they are ordinary libp2p services
and know nothing about WebTransport.
"""
