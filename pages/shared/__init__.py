"""What the pages share, by concern (the pages themselves stay thin):

- mode.py: where runs live, the sidebar's defaults, the Streamlit mode switch; imported first
- data.py: where a page's data comes from, every computation cached once per app process
- background.py: the training job and atlas builds, which outlive a rerun
- widgets.py: what pages draw alike (error cards, the sidebar's job, links, attribution controls)
"""
