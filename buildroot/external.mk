include $(sort $(wildcard $(BR2_EXTERNAL_EDGECAM_PATH)/package/*/*.mk))
