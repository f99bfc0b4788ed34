"""medreview: the Streamlit entry point. Pages live in pages/; all logic lives in medreview/."""

import streamlit as st

st.set_page_config(page_title="medreview", page_icon=":material/radiology:", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/upload.py", title="Upload", icon=":material/upload:"),
        st.Page("pages/label.py", title="Label", icon=":material/label:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/predictions.py", title="Predictions", icon=":material/insights:"),
        st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
    ]
)
navigation.run()
